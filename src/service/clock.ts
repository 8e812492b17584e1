/** The time source of the service, injectable so tests freeze and move time instead of sleeping. */
export interface Clock {
  /** Epoch milliseconds. */
  now(): number
}

/** The real clock. */
export const systemClock: Clock = Object.freeze({ now: () => Date.now() })
