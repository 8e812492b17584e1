/**
 * The caching verifier (the access tokens of `rekey serve`): a token verified once skips the
 * signature check, yet every rule still holds on every call, on a frozen clock: expiry and
 * not-before, a key retired or revoked by an update, a token altered by one character.
 */
import assert from 'node:assert/strict'
import { afterEach, beforeEach, describe, it, mock } from 'node:test'
import { Keyring } from '../../src/index.ts'
import { forgeHs, NOW, NOW_MS, throwsCode } from './helpers.ts'

const SECRET = 'cached-secret-0123456789abcdef0123456789abcdef'
const NEXT_SECRET = 'cached-next-0123456789abcdef0123456789abcdef00'

beforeEach(() => mock.timers.enable({ apis: ['Date'], now: NOW_MS }))
afterEach(() => mock.timers.reset())

function setup(): { keyring: Keyring, kid: string, verify: (token: string) => ReturnType<Keyring['verify']> } {
  const keyring = Keyring.fromKeys([{ secret: SECRET, state: 'current' }])
  return { keyring, kid: keyring.currentKid, verify: keyring.cachingVerifier({ requiredClaims: ['sub'] }) }
}

describe('cachingVerifier', () => {
  it('a token verified once still expires at its exp', () => {
    const { kid, verify } = setup()
    const token = forgeHs({ alg: 'HS256', kid }, { sub: 'u1', exp: NOW + 60 }, SECRET)
    assert.equal(verify(token).payload.sub, 'u1')
    assert.equal(verify(token).payload.sub, 'u1')
    mock.timers.tick(60_000)
    const err = throwsCode(() => verify(token), 'ERR_TOKEN_EXPIRED', 'The token has expired')
    assert.equal(err.kid, kid)
    throwsCode(() => verify(token), 'ERR_TOKEN_EXPIRED')
  })

  it('a token not valid yet is refused on every call until its nbf', () => {
    const { kid, verify } = setup()
    const token = forgeHs({ alg: 'HS256', kid }, { sub: 'u1', nbf: NOW + 10, exp: NOW + 60 }, SECRET)
    throwsCode(() => verify(token), 'ERR_TOKEN_NOT_YET_VALID')
    throwsCode(() => verify(token), 'ERR_TOKEN_NOT_YET_VALID')
    mock.timers.tick(10_000)
    assert.equal(verify(token).payload.sub, 'u1')
  })

  it('a keyring update forgets every token: the retired key is refused at once', () => {
    const { keyring, kid, verify } = setup()
    const token = forgeHs({ alg: 'HS256', kid }, { sub: 'u1', exp: NOW + 60 }, SECRET)
    verify(token)
    keyring.update([{ secret: NEXT_SECRET, state: 'current' }, { secret: SECRET, state: 'retired' }])
    throwsCode(() => verify(token), 'ERR_KEY_RETIRED')
    keyring.update([{ secret: NEXT_SECRET, state: 'current' }, { secret: SECRET, state: 'revoked' }])
    throwsCode(() => verify(token), 'ERR_KEY_REVOKED')
  })

  it('a token altered in any segment is verified afresh and refused', () => {
    const { kid, verify } = setup()
    const token = forgeHs({ alg: 'HS256', kid }, { sub: 'u1', exp: NOW + 60 }, SECRET)
    verify(token)
    const [header, payload, signature] = token.split('.') as [string, string, string]
    const flip = (s: string): string => s.slice(0, -1) + (s.endsWith('A') ? 'B' : 'A')
    throwsCode(() => verify(`${header}.${payload}.${flip(signature)}`), 'ERR_TOKEN_SIGNATURE')
    const forged = Buffer.from(JSON.stringify({ sub: 'admin', exp: NOW + 60 })).toString('base64url')
    throwsCode(() => verify(`${header}.${forged}.${signature}`), 'ERR_TOKEN_SIGNATURE')
    assert.equal(verify(token).payload.sub, 'u1')
  })

  it('the claims a hit returns are frozen: no caller can change them for the next', () => {
    const { kid, verify } = setup()
    const token = forgeHs({ alg: 'HS256', kid }, { sub: 'u1', aud: ['a'], exp: NOW + 60 }, SECRET)
    const first = verify(token)
    assert.throws(() => { (first.payload as Record<string, unknown>).sub = 'admin' }, TypeError)
    assert.throws(() => { (first.payload.aud as string[]).push('b') }, TypeError)
    assert.equal(verify(token).payload.sub, 'u1')
  })

  it('the rules of each verifier apply to a token another one verified', () => {
    const { keyring, kid, verify } = setup()
    const strict = keyring.cachingVerifier({ audience: 'api' })
    const token = forgeHs({ alg: 'HS256', kid }, { sub: 'u1', aud: 'web', exp: NOW + 60 }, SECRET)
    verify(token)
    throwsCode(() => strict(token), 'ERR_TOKEN_CLAIM', 'Unexpected "aud" claim value')
  })
})
