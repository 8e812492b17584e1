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

/**
 * True when two MACs in text form are equal, comparing every character whatever the first
 * difference. For the verify hot path: no hashing, no allocation. The caller checks the
 * length first (a MAC's length is public).
 */
export function macEquals(expected: string, given: string): boolean {
  if (expected.length !== given.length) return false
  let diff = 0
  for (let i = 0; i < expected.length; i++) diff |= expected.charCodeAt(i) ^ given.charCodeAt(i)
  return diff === 0
}
