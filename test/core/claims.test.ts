/**
 * Registered claims on a frozen clock: what verify refuses and accepts at each boundary,
 * and what sign writes.
 */
import assert from 'node:assert/strict'
import { afterEach, beforeEach, describe, it, mock } from 'node:test'
import { Keyring } from '../../src/index.ts'
import type { VerifyOptions } from '../../src/index.ts'
import { forgeHs, NOW, NOW_MS, throwsCode } from './helpers.ts'

const SECRET = 'claims-secret-0123456789abcdef0123456789abcdef'
const keyring = Keyring.fromKeys([{ secret: SECRET, state: 'current' }])
const kid = keyring.currentKid

/** A token with exactly these claims (sign would add iat and exp). */
const token = (claims: Record<string, unknown>): string => forgeHs({ alg: 'HS256', typ: 'JWT', kid }, claims, SECRET)
const verify = (claims: Record<string, unknown>, options?: VerifyOptions) => keyring.verify(token(claims), options)
const decode = (jwt: string): Record<string, unknown> => JSON.parse(Buffer.from(jwt.split('.')[1] ?? '', 'base64url').toString())

beforeEach(() => mock.timers.enable({ apis: ['Date'], now: NOW_MS }))
afterEach(() => mock.timers.reset())

describe('exp, nbf, iat must be numbers', () => {
  for (const claim of ['exp', 'nbf', 'iat'] as const) {
    for (const bad of [String(NOW + 60), null, true, [NOW + 60], { n: 1 }]) {
      it(`${claim}: ${JSON.stringify(bad)}`, () => {
        const err = throwsCode(() => verify({ [claim]: bad }), 'ERR_TOKEN_CLAIM', `"${claim}" must be a number`)
        assert.equal(err.claim, claim)
      })
    }
  }

  it('a number too large to be finite (1e400 parses as Infinity)', () => {
    const jwt = forgeHs({ alg: 'HS256', kid }, '{"exp":1e400}', SECRET)
    assert.equal(throwsCode(() => keyring.verify(jwt), 'ERR_TOKEN_CLAIM', '"exp" must be a number').claim, 'exp')
  })

  it('claims are read only after the signature verified', () => {
    const forged = token({ exp: 'never' }).slice(0, -2) + 'AA'
    throwsCode(() => keyring.verify(forged), 'ERR_TOKEN_SIGNATURE')
  })
})

describe('exp and nbf on a frozen clock', () => {
  it('a token expires exactly at exp', () => {
    assert.equal(verify({ exp: NOW + 1 }).payload.exp, NOW + 1)
    const err = throwsCode(() => verify({ exp: NOW }), 'ERR_TOKEN_EXPIRED', 'The token has expired')
    assert.equal(err.claim, 'exp')
  })

  it('a signed token lives expiresIn seconds, not one more', () => {
    const jwt = keyring.sign({ sub: 'u' }, { expiresIn: 60 })
    mock.timers.tick(59_999)
    assert.equal(keyring.verify(jwt).payload.sub, 'u')
    mock.timers.tick(1)
    throwsCode(() => keyring.verify(jwt), 'ERR_TOKEN_EXPIRED')
  })

  it('nbf: valid from nbf on', () => {
    assert.ok(verify({ nbf: NOW }))
    const err = throwsCode(() => verify({ nbf: NOW + 1 }), 'ERR_TOKEN_NOT_YET_VALID', 'The token is not valid yet')
    assert.equal(err.claim, 'nbf')
  })

  it('tokens without exp or nbf are not refused for it', () => {
    assert.deepEqual(verify({ sub: 'forever' }).payload, { sub: 'forever' })
  })

  it('an iat in the future is accepted unless maxTokenAge is set', () => {
    assert.ok(verify({ iat: NOW + 3600 }))
    throwsCode(() => verify({ iat: NOW + 3600 }, { maxTokenAge: '1d' }), 'ERR_TOKEN_NOT_YET_VALID', 'The token was issued in the future')
  })
})

describe('clockTolerance', () => {
  for (const tolerance of [5, '5s']) {
    it(`${JSON.stringify(tolerance)} moves both boundaries by 5 seconds`, () => {
      assert.ok(verify({ exp: NOW - 4 }, { clockTolerance: tolerance }))
      throwsCode(() => verify({ exp: NOW - 5 }, { clockTolerance: tolerance }), 'ERR_TOKEN_EXPIRED')
      assert.ok(verify({ nbf: NOW + 5 }, { clockTolerance: tolerance }))
      throwsCode(() => verify({ nbf: NOW + 6 }, { clockTolerance: tolerance }), 'ERR_TOKEN_NOT_YET_VALID')
    })
  }

  it('in minutes', () => {
    assert.ok(verify({ exp: NOW - 119 }, { clockTolerance: '2m' }))
    throwsCode(() => verify({ exp: NOW - 120 }, { clockTolerance: '2m' }), 'ERR_TOKEN_EXPIRED')
  })

  it('misuse is a TypeError', () => {
    for (const bad of [-1, 'soon', Number.NaN, {}]) {
      assert.throws(() => verify({}, { clockTolerance: bad as number }), {
        name: 'TypeError', message: 'clockTolerance must be a number of seconds or a duration such as "15m", "1h" or "7d"',
      })
    }
  })
})

describe('maxTokenAge', () => {
  it('refuses tokens issued longer ago than the limit', () => {
    assert.ok(verify({ iat: NOW - 3600 }, { maxTokenAge: '1h' }))
    assert.ok(verify({ iat: NOW - 3600 }, { maxTokenAge: 3600 }))
    const err = throwsCode(() => verify({ iat: NOW - 3601 }, { maxTokenAge: '1h' }), 'ERR_TOKEN_EXPIRED', 'The token is older than maxTokenAge')
    assert.equal(err.claim, 'iat')
  })

  it('counts the clock tolerance', () => {
    assert.ok(verify({ iat: NOW - 3610 }, { maxTokenAge: '1h', clockTolerance: 10 }))
    throwsCode(() => verify({ iat: NOW - 3611 }, { maxTokenAge: '1h', clockTolerance: 10 }), 'ERR_TOKEN_EXPIRED')
  })

  it('requires iat', () => {
    const err = throwsCode(() => verify({ exp: NOW + 60 }, { maxTokenAge: '1h' }), 'ERR_TOKEN_CLAIM', 'The "iat" claim is required when maxTokenAge is set')
    assert.equal(err.claim, 'iat')
  })
})

describe('aud, iss, sub, required claims', () => {
  it('audience: a string against a string or an array', () => {
    assert.ok(verify({ aud: 'api' }, { audience: 'api' }))
    assert.ok(verify({ aud: 'api' }, { audience: ['web', 'api'] }))
    assert.ok(verify({ aud: ['web', 'api'] }, { audience: 'api' }))
    assert.ok(verify({ aud: ['x', 'api'] }, { audience: ['y', 'api'] }))
  })

  it('audience: mismatch, absence and wrong types are refused', () => {
    for (const aud of ['other', ['x', 'y'], [], undefined, 42, [42], { api: true }]) {
      const err = throwsCode(() => verify(aud === undefined ? {} : { aud }, { audience: 'api' }), 'ERR_TOKEN_CLAIM', 'Unexpected "aud" claim value')
      assert.equal(err.claim, 'aud')
    }
  })

  it('issuer: one or several accepted', () => {
    assert.ok(verify({ iss: 'https://auth.example' }, { issuer: 'https://auth.example' }))
    assert.ok(verify({ iss: 'b' }, { issuer: ['a', 'b'] }))
    for (const iss of ['https://evil.example', undefined, ['https://auth.example']]) {
      const err = throwsCode(() => verify(iss === undefined ? {} : { iss }, { issuer: 'https://auth.example' }), 'ERR_TOKEN_CLAIM', 'Unexpected "iss" claim value')
      assert.equal(err.claim, 'iss')
    }
  })

  it('subject', () => {
    assert.ok(verify({ sub: 'u1' }, { subject: 'u1' }))
    assert.equal(throwsCode(() => verify({ sub: 'u2' }, { subject: 'u1' }), 'ERR_TOKEN_CLAIM', 'Unexpected "sub" claim value').claim, 'sub')
  })

  it('requiredClaims names the first missing claim', () => {
    assert.ok(verify({ jti: 'j', role: 'admin' }, { requiredClaims: ['jti', 'role'] }))
    const err = throwsCode(() => verify({ jti: 'j' }, { requiredClaims: ['jti', 'role'] }), 'ERR_TOKEN_CLAIM', 'The "role" claim is required')
    assert.equal(err.claim, 'role')
  })

  it('verify options are checked: misuse is a TypeError', () => {
    const jwt = token({})
    assert.throws(() => keyring.verify(jwt, { audience: [] }), { name: 'TypeError', message: 'audience must be a string or a non-empty array of strings' })
    assert.throws(() => keyring.verify(jwt, { issuer: [1] as unknown as string[] }), { name: 'TypeError', message: 'issuer must be a string or a non-empty array of strings' })
    assert.throws(() => keyring.verify(jwt, { requiredClaims: 'sub' as unknown as string[] }), { name: 'TypeError', message: 'requiredClaims must be an array of claim names' })
    assert.throws(() => keyring.verifier({ maxTokenAge: 'old' }), { name: 'TypeError', message: 'maxTokenAge must be a number of seconds or a duration such as "15m", "1h" or "7d"' })
  })

  it('currentDate replaces the clock', () => {
    throwsCode(() => verify({ exp: NOW + 60 }, { currentDate: new Date(NOW_MS + 60_000) }), 'ERR_TOKEN_EXPIRED')
    assert.ok(verify({ exp: NOW - 60 }, { currentDate: new Date(NOW_MS - 61_000) }))
  })
})

describe('sign', () => {
  it('writes iat now and exp after the default lifetime (900 s), under the current kid', () => {
    const jwt = keyring.sign({ sub: 'u', role: 'admin' })
    assert.deepEqual(decode(jwt), { sub: 'u', role: 'admin', iat: NOW, exp: NOW + 900 })
    assert.deepEqual(JSON.parse(Buffer.from(jwt.split('.')[0] ?? '', 'base64url').toString()), { alg: 'HS256', typ: 'JWT', kid })
  })

  it('expiresIn as seconds or text; the keyring default', () => {
    assert.equal(decode(keyring.sign({}, { expiresIn: 60 })).exp, NOW + 60)
    assert.equal(decode(keyring.sign({}, { expiresIn: '15m' })).exp, NOW + 900)
    assert.equal(decode(keyring.sign({}, { expiresIn: '7d' })).exp, NOW + 7 * 86_400)
    const hourly = Keyring.fromKeys([{ secret: SECRET, state: 'current' }], { expiresIn: '1h' })
    assert.equal(decode(hourly.sign({})).exp, NOW + 3600)
  })

  it('notBefore, audience, issuer, subject, jwtId', () => {
    const jwt = keyring.sign({ role: 'r' }, { notBefore: '5m', audience: ['api', 'web'], issuer: 'https://auth.example', subject: 'u9', jwtId: 'j-1' })
    assert.deepEqual(decode(jwt), { role: 'r', iat: NOW, exp: NOW + 900, nbf: NOW + 300, aud: ['api', 'web'], iss: 'https://auth.example', sub: 'u9', jti: 'j-1' })
    throwsCode(() => keyring.verify(jwt), 'ERR_TOKEN_NOT_YET_VALID')
    mock.timers.tick(300_000)
    assert.equal(keyring.verify(jwt, { audience: 'web', issuer: 'https://auth.example', subject: 'u9' }).payload.jti, 'j-1')
  })

  it('keeps the caller\'s exp and iat, and never changes the caller\'s object', () => {
    const claims = { sub: 'u', exp: NOW + 5, iat: NOW - 5 }
    assert.deepEqual(decode(keyring.sign(claims)), { sub: 'u', exp: NOW + 5, iat: NOW - 5 })
    assert.deepEqual(claims, { sub: 'u', exp: NOW + 5, iat: NOW - 5 })
    const bare = { sub: 'u' }
    keyring.sign(bare)
    assert.deepEqual(bare, { sub: 'u' })
  })

  it('refuses exp together with expiresIn', () => {
    assert.throws(() => keyring.sign({ exp: NOW + 5 }, { expiresIn: 60 }), { name: 'TypeError', message: 'give either an exp claim or expiresIn, not both' })
  })

  it('refuses claims that are not an object', () => {
    for (const claims of [null, undefined, 'sub', 42, ['sub'], true]) {
      assert.throws(() => keyring.sign(claims as object), { name: 'TypeError', message: 'claims must be an object' }, String(claims))
    }
  })

  it('refuses non-numeric exp and iat, and bad durations', () => {
    assert.throws(() => keyring.sign({ exp: '2030-01-01' }), { name: 'TypeError', message: 'the exp claim must be a number' })
    assert.throws(() => keyring.sign({ iat: 'now' }), { name: 'TypeError', message: 'the iat claim must be a number' })
    // NaN and Infinity would be written as null: a token that no verifier accepts.
    for (const n of [Number.NaN, Number.POSITIVE_INFINITY]) {
      assert.throws(() => keyring.sign({ exp: n }), { name: 'TypeError', message: 'the exp claim must be a number' })
      assert.throws(() => keyring.sign({ iat: n }), { name: 'TypeError', message: 'the iat claim must be a number' })
    }
    assert.throws(() => keyring.sign({}, { expiresIn: '15 fortnights' }), { name: 'TypeError', message: 'expiresIn must be a number of seconds or a duration such as "15m", "1h" or "7d"' })
    assert.throws(() => keyring.sign({}, { notBefore: -1 }), { name: 'TypeError', message: 'notBefore must be a number of seconds or a duration such as "15m", "1h" or "7d"' })
  })
})
