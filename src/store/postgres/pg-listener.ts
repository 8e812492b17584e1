/**
 * Change notification for PostgreSQL: one dedicated connection per store runs `LISTEN` on the
 * store's channel; writers `pg_notify` it in their transaction, so a message arrives only
 * after commit. When the connection drops, it reconnects with backoff (100 ms doubling to 5 s)
 * and then signals every channel, because notifications sent meanwhile were lost.
 */
import pg from 'pg'
import type { ClientConfig } from 'pg'
import { CHANGE_CHANNELS } from '../store.ts'
import type { ChangeChannel, ChangeListener } from '../store.ts'

type Listener = ChangeListener

const FIRST_RETRY_MS = 100
const MAX_RETRY_MS = 5000

export class PgListener {
  readonly #config: ClientConfig
  readonly #channel: string
  readonly #onError: (err: unknown) => void
  readonly #listeners = new Set<Listener>()
  #client: pg.Client | null = null
  #connecting: Promise<void> | null = null
  #retryTimer: NodeJS.Timeout | null = null
  #retryMs = FIRST_RETRY_MS
  #closed = false

  /** `channel` is the PostgreSQL channel name; payloads name the store's change channels. */
  constructor(config: ClientConfig, channel: string, onError: (err: unknown) => void) {
    this.#config = config
    this.#channel = channel
    this.#onError = onError
  }

  /** Adds a listener; the first one connects (rejecting if that fails). */
  async add(listener: Listener): Promise<() => Promise<void>> {
    if (this.#client === null && this.#retryTimer === null) {
      this.#connecting ??= this.#connect().finally(() => { this.#connecting = null })
      await this.#connecting
    }
    this.#listeners.add(listener)
    return async () => {
      this.#listeners.delete(listener)
      if (this.#listeners.size === 0) await this.#stop()
    }
  }

  /** The PostgreSQL channel name. */
  get channel(): string {
    return this.#channel
  }

  /** Whether the LISTEN connection is up (for health reporting and tests). */
  get connected(): boolean {
    return this.#client !== null
  }

  async close(): Promise<void> {
    this.#closed = true
    this.#listeners.clear()
    await this.#stop()
  }

  async #connect(): Promise<void> {
    const client = new pg.Client(this.#config)
    // 'error' is followed by 'end', which schedules the reconnect.
    client.on('error', (err) => this.#onError(err))
    client.on('end', () => this.#dropped(client))
    client.on('notification', (message) => {
      if (message.channel === this.#channel) this.#emit(message.payload)
    })
    try {
      await client.connect()
      await client.query(`LISTEN ${pg.escapeIdentifier(this.#channel)}`)
    } catch (err) {
      await client.end().catch(() => {})
      throw err
    }
    if (this.#closed) {
      await client.end().catch(() => {})
      return
    }
    this.#client = client
    this.#retryMs = FIRST_RETRY_MS
  }

  #dropped(client: pg.Client): void {
    if (this.#client !== client) return
    this.#client = null
    if (!this.#closed && this.#listeners.size > 0) this.#scheduleRetry()
  }

  #scheduleRetry(): void {
    if (this.#retryTimer !== null) return
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = null
      if (this.#closed || this.#listeners.size === 0) return
      // Tracked in #connecting so that #stop() waits for it and closes what it opened.
      this.#connecting = this.#connect().finally(() => { this.#connecting = null })
      this.#connecting.then(
        () => { if (this.#client !== null) for (const channel of CHANGE_CHANNELS) this.#emit(channel) },
        (err: unknown) => {
          this.#onError(err)
          this.#retryMs = Math.min(this.#retryMs * 2, MAX_RETRY_MS)
          this.#scheduleRetry()
        },
      )
    }, this.#retryMs)
    this.#retryTimer.unref()
  }

  /** Payloads are `CHANNEL` or `CHANNEL:USERID` (a change that concerns one user). */
  #emit(payload: string | undefined): void {
    if (payload === undefined) return
    const colon = payload.indexOf(':')
    const name = colon < 0 ? payload : payload.slice(0, colon)
    if (!(CHANGE_CHANNELS as readonly string[]).includes(name)) return
    const userId = colon < 0 ? undefined : payload.slice(colon + 1)
    for (const listener of [...this.#listeners]) {
      try {
        if (userId === undefined) listener(name as ChangeChannel)
        else listener(name as ChangeChannel, userId)
      } catch (err) {
        this.#onError(err) // one failing subscriber must not starve the others
      }
    }
  }

  async #stop(): Promise<void> {
    if (this.#retryTimer !== null) clearTimeout(this.#retryTimer)
    this.#retryTimer = null
    await this.#connecting?.catch(() => {})
    const client = this.#client
    this.#client = null
    await client?.end().catch(() => {})
  }
}
