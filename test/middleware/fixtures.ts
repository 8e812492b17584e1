/**
 * Keys and tokens both middleware suites use: a keyring mid-rotation (B signs, A still
 * verifies as `previous`), a revoked key, and tokens that fail in each documented way.
 */
import assert from 'node:assert/strict'
import { generateSecret, Keyring } from '../../src/index.ts'
import type { KeyInput } from '../../src/index.ts'

export const EXPECTED_CHALLENGE = 'Bearer error="invalid_token"'

export interface Fixture {
  keyring: Keyring
  /** Signed by the current key. */
  valid: string
  /** Signed by the current key with `aud: "api"`. */
  forApi: string
  /** Signed by the current key with `aud: "other"`. */
  forOther: string
  /** Signed by A while it was current; A is now `previous`. */
  graceToken: string
  /** Signed by C while it was current; C is now `revoked`. */
  revokedKeyToken: string
  /** Signed by a key this keyring never held. */
  unknownKidToken: string
  /** The valid token's header and signature around a forged payload. */
  forged: string
  /** Expired a minute ago (explicit `exp`). */
  expired: string
  kidA: string
  kidB: string
}

function key(secret: string, state: KeyInput['state']): KeyInput {
  return { secret, state }
}

/** Builds the fixture: every token is signed while its key was current, then the set rotates. */
export function makeFixture(): Fixture {
  const a = generateSecret()
  const b = generateSecret()
  const c = generateSecret()
  const keyring = Keyring.fromKeys([key(a, 'current')])
  const kidA = keyring.currentKid
  const graceToken = keyring.sign({ sub: 'grace-user' })
  keyring.update([key(c, 'current'), key(a, 'previous')])
  const revokedKeyToken = keyring.sign({ sub: 'leaked-user' })
  keyring.update([key(b, 'current'), key(a, 'previous'), key(c, 'revoked')])
  const kidB = keyring.currentKid
  const now = Math.floor(Date.now() / 1000)
  const valid = keyring.sign({ sub: 'user-1', role: 'member' }, { jwtId: 'jti-1' })
  const [header, , signature] = valid.split('.')
  const forgedPayload = Buffer.from(JSON.stringify({ sub: 'admin', role: 'admin', exp: now + 3600 })).toString('base64url')
  const stranger = Keyring.fromKeys([key(generateSecret(), 'current')])
  return {
    keyring,
    valid,
    forApi: keyring.sign({ sub: 'user-1' }, { audience: 'api' }),
    forOther: keyring.sign({ sub: 'user-1' }, { audience: 'other' }),
    graceToken,
    revokedKeyToken,
    unknownKidToken: stranger.sign({ sub: 'user-1' }),
    forged: `${header}.${forgedPayload}.${signature}`,
    expired: keyring.sign({ sub: 'user-1', iat: now - 120, exp: now - 60 }),
    kidA,
    kidB,
  }
}

/** A request's answer as both suites see it. */
export interface Answer {
  status: number
  challenge: string | undefined
  contentType: string | undefined
  /** Every header value and the body, to search for leaked tokens. */
  raw: string
  body: unknown
}

/** Asserts the contract's 401: exact challenge, JSON `{ error, message }`, no token echoed. */
export function assertRefused(answer: Answer, code: string, message: RegExp | string, token?: string): void {
  assert.equal(answer.status, 401)
  assert.equal(answer.challenge, EXPECTED_CHALLENGE)
  assert.match(answer.contentType ?? '', /^application\/json/)
  const body = answer.body as Record<string, unknown>
  assert.deepEqual(Object.keys(body).sort(), ['error', 'message'])
  assert.equal(body.error, code)
  if (typeof message === 'string') assert.equal(body.message, message)
  else assert.match(String(body.message), message)
  if (token !== undefined) {
    for (const segment of token.split('.')) {
      if (segment.length > 8) assert.ok(!answer.raw.includes(segment), 'the answer echoes part of the token')
    }
  }
}
