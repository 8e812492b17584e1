/**
 * Following the store's key set: one reload at a time (a call during a reload asks for one
 * more read afterwards, so nothing committed meanwhile is missed), and a failed reload tried
 * again by itself (1 s, doubling to 10 s). A notification lost to a store outage sends no
 * second one, and a rotation waits for every instance until it has loaded the key set: without
 * the retry, one failure would leave the process behind for good.
 *
 * Used by `rekey serve`'s key service and by `Cipher.fromStore`.
 */

/** A failed reload is tried again after this long, doubling up to {@link RELOAD_RETRY_MAX_MS}. */
const RELOAD_RETRY_MS = 1000
const RELOAD_RETRY_MAX_MS = 10_000

/** What {@link Reloader} runs and tells. */
export interface ReloaderOptions {
  /** Reads and applies the key set; a throw keeps what was loaded and schedules a retry. */
  readonly load: () => Promise<void>
  /** Told of a failure: once per distinct message, then again every `relogMs` while it lasts. */
  readonly onFailure: (err: unknown) => void
  /** Told when a load succeeds after a failure. */
  readonly onRecovered?: () => void
  /** How often a failure that lasts is told again, ms. Default: never. */
  readonly relogMs?: number
}

export class Reloader {
  readonly #options: ReloaderOptions
  #reloading: Promise<void> | null = null
  #again = false
  #retry: NodeJS.Timeout | null = null
  #retryMs = 0
  #lastFailure: string | null = null
  #lastToldAt = 0
  #stopped = false

  constructor(options: ReloaderOptions) {
    this.#options = options
  }

  /** Reloads now, or once more after the reload in flight. Never rejects. */
  reload(): Promise<void> {
    if (this.#reloading !== null) {
      this.#again = true
      return this.#reloading
    }
    this.#reloading = (async () => {
      do {
        this.#again = false
        try {
          await this.#options.load()
          this.#retryMs = 0
          if (this.#lastFailure !== null) this.#options.onRecovered?.()
          this.#lastFailure = null
        } catch (err) {
          this.#failed(err)
        }
      } while (this.#again)
    })().finally(() => { this.#reloading = null })
    return this.#reloading
  }

  /** No more retries; waits for the reload in flight. */
  async stop(): Promise<void> {
    this.#stopped = true
    if (this.#retry !== null) clearTimeout(this.#retry)
    this.#retry = null
    await this.#reloading
  }

  #failed(err: unknown): void {
    const message = (err as Error | undefined)?.message ?? String(err)
    const now = Date.now()
    if (message !== this.#lastFailure || now - this.#lastToldAt >= (this.#options.relogMs ?? Number.POSITIVE_INFINITY)) {
      this.#options.onFailure(err)
      this.#lastFailure = message
      this.#lastToldAt = now
    }
    if (this.#stopped || this.#retry !== null) return
    this.#retryMs = Math.min(RELOAD_RETRY_MAX_MS, this.#retryMs === 0 ? RELOAD_RETRY_MS : this.#retryMs * 2)
    this.#retry = setTimeout(() => {
      this.#retry = null
      void this.reload()
    }, this.#retryMs)
    this.#retry.unref()
  }
}
