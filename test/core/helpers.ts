/**
 * Small tools the core suites share: base64url segments, hand-made tokens, a seeded PRNG,
 * and an assertion that pins a RekeyError's code (and message).
 */
import assert from 'node:assert/strict'
import { createHmac, generateKeyPairSync, type KeyObject } from 'node:crypto'
import { ERRORS, RekeyError } from '../../src/index.ts'
import type { ErrorCode } from '../../src/index.ts'

/** base64url of a JSON value, or of a string's UTF-8 bytes as they are. */
export function b64u(value: unknown): string {
  return Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url')
}

const HASH = { HS256: 'sha256', HS384: 'sha384', HS512: 'sha512' } as const

/** An HMAC signature over `input`, as any JWT library computes it from a string secret. */
export function hmac(alg: keyof typeof HASH, secret: string | Buffer | KeyObject, input: string): string {
  return createHmac(HASH[alg], secret).update(input).digest('base64url')
}

/** A token with the given header and payload, HMAC-signed with `secret` (HS256 unless told). */
export function forgeHs(header: unknown, payload: unknown, secret: string | Buffer | KeyObject, alg: keyof typeof HASH = 'HS256'): string {
  const input = `${b64u(header)}.${b64u(payload)}`
  return `${input}.${hmac(alg, secret, input)}`
}

/** Re-signs already-encoded header and payload segments with an HMAC key. */
export function resignHs(header: string, payload: string, secret: string, alg: keyof typeof HASH = 'HS256'): string {
  return `${header}.${payload}.${hmac(alg, secret, `${header}.${payload}`)}`
}

/** Asserts that `fn` throws a RekeyError with this code, and this exact message when given. */
export function throwsCode(fn: () => unknown, code: ErrorCode, message?: string | RegExp): RekeyError {
  let caught: unknown
  try {
    fn()
  } catch (err) {
    caught = err
  }
  assert.ok(caught instanceof RekeyError, `expected a RekeyError ${code}, got ${caught === undefined ? 'no error' : String(caught)}`)
  assert.equal(caught.name, 'RekeyError')
  assert.equal(caught.code, code, `expected ${code}, got ${caught.code}: ${caught.message}`)
  assert.equal(caught.status, ERRORS[code].status)
  if (typeof message === 'string') assert.equal(caught.message, message)
  else if (message !== undefined) assert.match(caught.message, message)
  return caught
}

/** A JWT_KEYS-style private JWK for one of the asymmetric algorithms. */
export function privateJwk(alg: 'EdDSA' | 'ES256' | 'RS256', kid: string): { jwk: Record<string, unknown>, publicKey: KeyObject, privateKey: KeyObject } {
  const { publicKey, privateKey } = alg === 'EdDSA'
    ? generateKeyPairSync('ed25519')
    : alg === 'ES256'
      ? generateKeyPairSync('ec', { namedCurve: 'P-256' })
      : generateKeyPairSync('rsa', { modulusLength: 2048 })
  return { jwk: { ...privateKey.export({ format: 'jwk' }), kid, alg }, publicKey, privateKey }
}

/** mulberry32: a tiny seeded PRNG, so a failing fuzz case can be replayed. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296
  }
}

/** A fixed instant for claims tests: 2025-01-01T00:00:00Z. */
export const NOW_MS = Date.UTC(2025, 0, 1)
/** {@link NOW_MS} in seconds, as JWT claims count time. */
export const NOW = NOW_MS / 1000
