/**
 * The one constant-time comparison of secrets (metrics token, CSRF token, anything a client
 * presents against a value the server holds).
 */
import { createHash, timingSafeEqual } from 'node:crypto'

/**
 * True when `given` equals `expected`, in time independent of where they differ. Both sides
 * are hashed first, so the comparison runs on equal lengths and the length of the expected
 * value does not leak either.
 */
export function secretEquals(given: string | Uint8Array, expected: string | Uint8Array): boolean {
  const a = createHash('sha256').update(given).digest()
  const b = createHash('sha256').update(expected).digest()
  return timingSafeEqual(a, b)
}
