/**
 * The instance heartbeat: every few seconds this instance tells the store who it is and which
 * key-set version it has loaded, so `rekey status` and rotations can see every live instance.
 */
import os from 'node:os'
import type { Store } from '../../store/store.ts'
import type { Clock } from '../clock.ts'

/** Default interval between heartbeats, ms. */
export const HEARTBEAT_INTERVAL_MS = 5000

export class Heartbeat {
  readonly instanceId: string
  readonly #store: Store
  readonly #clock: Clock
  readonly #version: () => number
  readonly #intervalMs: number
  readonly #startedAt: number
  readonly #onError: (err: unknown) => void
  #timer: NodeJS.Timeout | null = null
  #beating: Promise<void> | null = null
  #again: Promise<void> | null = null
  #stopped = false

  constructor(options: { instanceId: string, store: Store, clock: Clock, keysetVersion: () => number, intervalMs?: number, onError: (err: unknown) => void }) {
    this.instanceId = options.instanceId
    this.#store = options.store
    this.#clock = options.clock
    this.#version = options.keysetVersion
    this.#intervalMs = options.intervalMs ?? HEARTBEAT_INTERVAL_MS
    this.#startedAt = options.clock.now()
    this.#onError = options.onError
  }

  /**
   * Sends one heartbeat now; failures go to `onError` (the store may be down for a while).
   * A call during a beat in flight sends one more after it, so a key set loaded meanwhile is
   * acknowledged at once rather than at the next interval (rotations wait for that).
   */
  beat(): Promise<void> {
    if (this.#beating !== null) {
      this.#again ??= this.#beating.then(() => {
        this.#again = null
        return this.beat()
      })
      return this.#again
    }
    if (this.#stopped) return Promise.resolve()
    this.#beating = this.#store.heartbeat({
      instanceId: this.instanceId,
      hostname: os.hostname(),
      pid: process.pid,
      keysetVersion: this.#version(),
      startedAt: this.#startedAt,
      lastSeen: this.#clock.now(),
    }).catch(this.#onError).finally(() => { this.#beating = null })
    return this.#beating
  }

  /** Starts beating; resolves once the first beat landed (or failed to `onError`), so a started instance is listed. */
  start(): Promise<void> {
    if (this.#timer !== null) return Promise.resolve()
    const first = this.beat()
    this.#timer = setInterval(() => { void this.beat() }, this.#intervalMs)
    this.#timer.unref()
    return first
  }

  /** Stops beating and removes this instance's row (best effort). */
  async stop(): Promise<void> {
    if (this.#timer !== null) clearInterval(this.#timer)
    this.#timer = null
    this.#stopped = true
    await this.#again
    await this.#beating
    await this.#store.removeInstance(this.instanceId).catch(() => {})
  }
}
