/**
 * Per-kid verification counters of one instance, flushed to the store every few seconds, so
 * `rekey status` can show each key's share of verifications across instances and `emergency`
 * can report where a revoked key was still used. Counting is in memory on the hot path; a
 * failed flush keeps the counts for the next one.
 */
import type { Store } from '../../store/store.ts'
import type { UsageIncrement } from '../../store/types.ts'
import type { Clock } from '../clock.ts'

/** Default flush interval, ms. */
export const USAGE_FLUSH_INTERVAL_MS = 5000
/** Buckets older than this are pruned (by whichever instance flushes), ms: two days. */
export const USAGE_RETENTION_MS = 2 * 86_400_000
const PRUNE_EVERY_MS = 3_600_000
const MINUTE_MS = 60_000
/** Bound on distinct counters held between flushes, so a flood of odd results cannot grow memory. */
const MAX_COUNTERS = 10_000

interface Count { kid: string, instanceId: string, bucketStart: number, result: string, count: number }

export class UsageRecorder {
  readonly #store: Store
  readonly #clock: Clock
  readonly #instanceId: string
  readonly #intervalMs: number
  readonly #onError: (err: unknown) => void
  /** Counts of the current minute: kid → result → count (nested, so counting builds no key string). */
  #current = new Map<string, Map<string, Count>>()
  #bucket = -1
  /** Counts of earlier minutes and of failed flushes, waiting to be written. */
  #held: UsageIncrement[] = []
  #size = 0
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
    this.add(kid, result, 1)
  }

  /**
   * Adds `count` verifications at once (a keyring's usage report drains its counts every
   * flush). Bounded like {@link record}: past the limit, new counters are dropped, never memory.
   */
  add(kid: string, result: string, count: number): void {
    if (!Number.isSafeInteger(count) || count <= 0) return
    const bucketStart = Math.floor(this.#clock.now() / MINUTE_MS) * MINUTE_MS
    if (bucketStart !== this.#bucket) {
      this.#hold()
      this.#bucket = bucketStart
    }
    let byResult = this.#current.get(kid)
    if (byResult === undefined) {
      if (this.#size >= MAX_COUNTERS) return
      byResult = new Map()
      this.#current.set(kid, byResult)
    }
    const seen = byResult.get(result)
    if (seen !== undefined) {
      seen.count += count
      return
    }
    if (this.#size >= MAX_COUNTERS) return
    this.#size++
    byResult.set(result, { kid, instanceId: this.#instanceId, bucketStart, result, count })
  }

  /** Moves the current minute's counts to the rows waiting to be written. */
  #hold(): void {
    for (const byResult of this.#current.values()) {
      for (const count of byResult.values()) this.#held.push({ ...count })
    }
    this.#current = new Map()
  }

  /** The waiting rows, one per (bucket, kid, result): a batch must not name a row twice. */
  #take(): UsageIncrement[] {
    this.#hold()
    const merged = new Map<string, UsageIncrement>()
    for (const row of this.#held) {
      const key = `${row.bucketStart}\u0000${row.kid}\u0000${row.result}`
      const seen = merged.get(key)
      merged.set(key, seen === undefined ? row : { ...seen, count: seen.count + row.count })
    }
    this.#held = []
    this.#size = 0
    return [...merged.values()]
  }

  /** Writes the counts gathered so far; on failure they are kept and retried on the next flush. */
  flush(): Promise<void> {
    this.#flushing ??= (async () => {
      const rows = this.#take()
      if (rows.length > 0) {
        try {
          await this.#store.addUsage(rows)
        } catch (err) {
          this.#held.push(...rows)
          this.#size += rows.length
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
