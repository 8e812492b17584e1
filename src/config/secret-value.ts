import { inspect } from 'node:util'

/**
 * A secret setting (the master key, the metrics token): its value is only reachable through
 * {@link SecretValue.reveal}, so printing the configuration never shows it.
 */
export class SecretValue {
  readonly #value: Buffer

  constructor(value: Buffer | string) {
    this.#value = Buffer.isBuffer(value) ? Buffer.from(value) : Buffer.from(value, 'utf8')
  }

  /** A copy of the secret bytes. */
  reveal(): Buffer {
    return Buffer.from(this.#value)
  }

  /** The byte length, safe to show. */
  get length(): number {
    return this.#value.length
  }

  toJSON(): string {
    return '[redacted]'
  }

  toString(): string {
    return '[redacted]'
  }

  [inspect.custom](): string {
    return 'SecretValue [redacted]'
  }
}
