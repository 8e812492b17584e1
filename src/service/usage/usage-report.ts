/**
 * The store side of a keyring's usage report (`opts.usage` of any keyring): every flush
 * interval the keyring's per-kid counts are drained into a {@link UsageRecorder} (the same
 * recorder, table and bounded buffer `rekey serve` uses) and written under the process's
 * reporter id, `NAME/HOST/PID`. Each flush also writes one `report` row under the kid `''`
 * (never a real kid): it tells `rekey status` when the process last reported, even when it
 * verified nothing.
 *
 * The store is opened on the first flush, off the verify path; an unreachable store keeps
 * the counts (bounded) for the next flush, and is never a verification's problem.
 */
import os from 'node:os'
import { registerUsageReporter, type UsageCounts, type UsageReport, type UsageSettings } from '../../core/usage-counts.ts'
import type { Store } from '../../store/store.ts'
import { systemClock } from '../clock.ts'
import { UsageRecorder } from './usage.ts'

/** The kid of the rows that only say "this process reported" (no real kid is empty). */
export const REPORT_MARKER_KID = ''
/** The result of those rows. */
export const REPORT_MARKER_RESULT = 'report'
/** The result of a counted verification. */
export const RESULT_OK = 'ok'

/** The reporter id a library process writes its counts under. */
export function reporterIdOf(name: string, host = os.hostname(), pid = process.pid): string {
  return `${name}/${host}/${pid}`
}

/** A proxy store opened at the first flush, so constructing a keyring does no I/O. */
function lazyStore(location: string): { store: Store, close: () => Promise<void> } {
  let opened: Promise<Store> | null = null
  const open = (): Promise<Store> => {
    opened ??= import('../../store/open.ts').then(({ openStore }) => openStore(location, { max: 2 }))
    // A failed open is retried at the next flush.
    opened.catch(() => { opened = null })
    return opened
  }
  const store = {
    addUsage: async (rows: Parameters<Store['addUsage']>[0]) => (await open()).addUsage(rows),
    pruneUsage: async (before: number) => (await open()).pruneUsage(before),
  } as unknown as Store
  return { store, close: async () => { if (opened !== null) await (await opened.catch(() => null))?.close() } }
}

/** Starts the report of one keyring. */
export function startKeyringUsageReport(counts: UsageCounts, settings: UsageSettings): UsageReport {
  const { store, close } = lazyStore(settings.store)
  let lastError = ''
  const recorder = new UsageRecorder({
    store,
    clock: systemClock,
    instanceId: reporterIdOf(settings.name),
    intervalMs: settings.flushIntervalMs,
    onError: (err) => {
      // One warning per distinct problem, never per flush; the message names no secret (masked location).
      const message = (err as Error)?.message ?? String(err)
      if (message !== lastError) process.emitWarning(`rekey usage report (${settings.name}): ${message}; counts are kept for the next flush`, { code: 'REKEY_USAGE_REPORT' })
      lastError = message
    },
  })
  const drain = (): void => {
    for (const [kid, n] of counts.drain()) recorder.add(kid, RESULT_OK, n)
    recorder.add(REPORT_MARKER_KID, REPORT_MARKER_RESULT, 1)
  }
  const timer = setInterval(() => {
    drain()
    void recorder.flush()
  }, settings.flushIntervalMs)
  timer.unref()
  let closed: Promise<void> | null = null
  return {
    close() {
      closed ??= (async () => {
        clearInterval(timer)
        drain()
        await recorder.stop()
        await close()
      })()
      return closed
    },
  }
}

registerUsageReporter(startKeyringUsageReport)
