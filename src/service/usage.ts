/**
 * Per-kid verification counters of one instance, flushed to the store every few seconds, so
 * `rekey status` can show each key's share of verifications across instances and `emergency`
 * can report where a revoked key was still used. Counting is in memory on the hot path; a
 * failed flush keeps the counts for the next one.
 */
import type { Store } from '../store/store.ts'
import type { UsageIncrement } from '../store/types.ts'
import type { Clock } from './clock.ts'

/** Default flush interval, ms. */
export const USAGE_FLUSH_INTERVAL_MS = 5000
/** Buckets older than this are pruned (by whichever instance flushes), ms: two days. */
export const USAGE_RETENTION_MS = 2 * 86_400_000
const PRUNE_EVERY_MS = 3_600_000
const MINUTE_MS = 60_000
/** Bound on distinct counters held between flushes, so a flood of odd results cannot grow memory. */
const MAX_COUNTERS = 10_000

export class UsageRecorder {
  readonly #store: Store
  readonly #clock: Clock
  readonly #instanceId: string
  readonly #intervalMs: number
  readonly #onError: (err: unknown) => void
  #counts = new Map<string, UsageIncrement>()
  #timer: NodeJS.Timeout | null = null
  #flushing: Promise<void> | null = null
  #lastPrune = 0

  constructor(options: { store: Store, clock: Clock, instanceId: string, intervalMs?: number, onError: (err: unknown) => void }) {
    this.#store = options.store
    this.#clock = options.clock
    this.#instanceId = options.instanceId
    this.#intervalMs = options.intervalMs ?? USAGE_FLUSH_INTERVAL_MS
    this.#onError = options.onError
  }

  /** Counts one verification by `kid` with `result` (`ok` or an error code). */
  record(kid: string, result: string): void {
    const bucketStart = Math.floor(this.#clock.now() / MINUTE_MS) * MINUTE_MS
    const key = `${bucketStart}\u0000${kid}\u0000${result}`
    const seen = this.#counts.get(key)
    if (seen !== undefined) {
      this.#counts.set(key, { ...seen, count: seen.count + 1 })
      return
    }
    if (this.#counts.size >= MAX_COUNTERS) return
    this.#counts.set(key, { kid, instanceId: this.#instanceId, bucketStart, result, count: 1 })
  }

  /** Writes the counts gathered so far; on failure they are kept and retried on the next flush. */
  flush(): Promise<void> {
    this.#flushing ??= (async () => {
      const rows = [...this.#counts.values()]
      this.#counts = new Map()
      if (rows.length > 0) {
        try {
          await this.#store.addUsage(rows)
        } catch (err) {
          for (const row of rows) this.#merge(row)
          throw err
        }
      }
      const now = this.#clock.now()
      if (now - this.#lastPrune >= PRUNE_EVERY_MS) {
        this.#lastPrune = now
        await this.#store.pruneUsage(now - USAGE_RETENTION_MS)
      }
    })().catch(this.#onError).finally(() => { this.#flushing = null })
    return this.#flushing
  }

  #merge(row: UsageIncrement): void {
    const key = `${row.bucketStart}\u0000${row.kid}\u0000${row.result}`
    const seen = this.#counts.get(key)
    this.#counts.set(key, seen === undefined ? row : { ...seen, count: seen.count + row.count })
  }

  start(): void {
    if (this.#timer !== null) return
    this.#timer = setInterval(() => { void this.flush() }, this.#intervalMs)
    this.#timer.unref()
  }

  /** Stops the timer and flushes what is left. */
  async stop(): Promise<void> {
    if (this.#timer !== null) clearInterval(this.#timer)
    this.#timer = null
    await this.#flushing
    await this.flush()
  }
}
