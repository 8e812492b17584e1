/**
 * `rekey backup`, `backup verify` and `restore` decrypt the whole store into a temporary
 * directory and the drill restores it into a temporary database. Ctrl-C, SIGTERM or SIGHUP
 * must not leave those behind: the signal runs the cleanups the operation registered
 * (`src/ops/backup/interrupt-cleanup.ts`), says what was removed, and exits 1 with the usual
 * one-line error. What a kill -9 left, the next run removes first ({@link removeLeftoversOf}).
 */
import { cleanUpInterrupted } from '../ops/backup/interrupt-cleanup.ts'
import { EXIT, type CliIo } from './context.ts'
import { failureJson, failureLine } from './failure.ts'

const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const

/** A server that does not answer the drop must not keep an interrupted run alive. */
const CLEANUP_LIMIT_MS = 20_000

/**
 * Runs `fn` with SIGINT, SIGTERM and SIGHUP turned into cleanup and exit 1. Once a signal has
 * come, the outcome of `fn` (often an error of a killed tool) is not reported: the signal's is.
 */
export async function runInterruptible<T>(io: CliIo, json: boolean, fn: () => Promise<T>): Promise<T> {
  const state: { stopping: Promise<never> | null } = { stopping: null }
  const onSignal = (signal: NodeJS.Signals): void => {
    state.stopping ??= (async (): Promise<never> => {
      const limit = setTimeout(() => {
        report(io, json, `interrupted by ${signal}; the cleanup did not finish within ${CLEANUP_LIMIT_MS / 1000} s: the next backup, verify or restore removes what is left`)
        process.exit(EXIT.REFUSED)
      }, CLEANUP_LIMIT_MS)
      const { removed, failed } = await cleanUpInterrupted(signal)
      clearTimeout(limit)
      const parts = [`interrupted by ${signal}`]
      if (removed.length > 0) parts.push(`removed ${removed.join(', ')}`)
      if (failed.length > 0) parts.push(`could not remove ${failed.join(', ')}: the next backup, verify or restore removes them`)
      report(io, json, parts.join('; '))
      process.exit(EXIT.REFUSED)
    })()
  }
  for (const signal of SIGNALS) process.on(signal, onSignal)
  try {
    const result = await fn()
    if (state.stopping !== null) await state.stopping
    return result
  } catch (err) {
    if (state.stopping !== null) await state.stopping
    throw err
  } finally {
    for (const signal of SIGNALS) process.off(signal, onSignal)
  }
}

function report(io: CliIo, json: boolean, message: string): void {
  const failure = { code: 'ERR_REFUSED', message, detail: message, exitCode: EXIT.REFUSED }
  io.stderr(json ? failureJson(failure) : failureLine(failure))
}

/** Removes what dead earlier runs left and says so on stderr (names only). */
export async function removeLeftoversOf(io: CliIo, location: string): Promise<void> {
  const { removeLeftovers } = await import('../ops/backup/backup.ts')
  const removed = await removeLeftovers(location)
  if (removed.length > 0) io.stderr(`rekey: removed what an interrupted earlier backup, verify or restore left: ${removed.join(', ')}\n`)
}
