/**
 * Change notification for SQLite: every mutation bumps a counter row in the same transaction
 * (see `sql/changes.ts`); this poller reads the counters on a timer (one tiny query, default
 * every 250 ms) and signals each channel whose counter moved, whichever process moved it.
 */
import { CHANGE_CHANNELS } from '../store.ts'
import type { ChangeChannel } from '../store.ts'

type Counters = Readonly<Record<ChangeChannel, number>>
type Listener = (channel: ChangeChannel) => void

export class ChangePoller {
  readonly #read: () => Promise<Counters>
  readonly #intervalMs: number
  readonly #onError: (err: unknown) => void
  readonly #listeners = new Set<Listener>()
  #last: Counters | null = null
  #timer: NodeJS.Timeout | null = null
  #polling = false

  constructor(read: () => Promise<Counters>, intervalMs: number, onError: (err: unknown) => void) {
    this.#read = read
    this.#intervalMs = intervalMs
    this.#onError = onError
  }

  /** Adds a listener; the first one reads the baseline (rejecting if that fails) and starts the timer. */
  async add(listener: Listener): Promise<() => Promise<void>> {
    if (this.#timer === null) {
      this.#last = await this.#read()
      // Another add() may have started it while we awaited the baseline.
      this.#timer ??= setInterval(() => void this.#tick(), this.#intervalMs).unref()
    }
    this.#listeners.add(listener)
    return async () => {
      this.#listeners.delete(listener)
      if (this.#listeners.size === 0) this.stop()
    }
  }

  stop(): void {
    if (this.#timer !== null) clearInterval(this.#timer)
    this.#timer = null
    this.#last = null
  }

  async #tick(): Promise<void> {
    if (this.#polling) return // a slow read (busy database) must not pile up
    this.#polling = true
    try {
      const counters = await this.#read()
      const last = this.#last
      this.#last = counters
      if (last === null) return
      for (const channel of CHANGE_CHANNELS) {
        if (counters[channel] !== last[channel]) this.#emit(channel)
      }
    } catch (err) {
      this.#onError(err) // keep polling: the database may be back on the next tick
    } finally {
      this.#polling = false
    }
  }

  #emit(channel: ChangeChannel): void {
    for (const listener of [...this.#listeners]) {
      try {
        listener(channel)
      } catch (err) {
        this.#onError(err) // one failing subscriber must not starve the others
      }
    }
  }
}
