/**
 * Rotation semantics as an operator lives them through the env conventions: a token
 * signed before the rotation verifies as `previous` during the grace window and is refused
 * once the grace key is gone; revoked, retired and next keys each behave as documented.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { Keyring } from '../../src/index.ts'
import type { KeyInput } from '../../src/index.ts'
import { forgeHs, privateJwk, throwsCode } from './helpers.ts'

const OLD = 'rotation-old-secret-0123456789abcdef0123456789'
const NEW = 'rotation-new-secret-0123456789abcdef0123456789'
const NEXT = 'rotation-next-secret-0123456789abcdef012345678'

const kidOf = (secret: string): string => Keyring.fromKeys([{ secret, state: 'current' }]).currentKid

/** Tokens issued before the rotation: one by rekey (with kid), one by a kid-less library. */
function issuedBefore(env: Record<string, string>): { withKid: string, kidless: string } {
  const keyring = Keyring.fromEnv(env)
  return { withKid: keyring.sign({ sub: 'before' }), kidless: forgeHs({ alg: 'HS256', typ: 'JWT' }, { sub: 'legacy' }, OLD) }
}

describe('rotation through JWT_SECRET / JWT_SECRET_PREV', () => {
  const { withKid, kidless } = issuedBefore({ JWT_SECRET: OLD })

  it('before: the old key signs and verifies as current', () => {
    const keyring = Keyring.fromEnv({ JWT_SECRET: OLD })
    assert.deepEqual({ ...keyring.verify(withKid), payload: undefined }, { payload: undefined, kid: kidOf(OLD), state: 'current' })
  })

  it('grace: old tokens verify with state previous; new tokens use the new key', () => {
    const keyring = Keyring.fromEnv({ JWT_SECRET: NEW, JWT_SECRET_PREV: OLD })
    const a = keyring.verify(withKid)
    assert.deepEqual([a.kid, a.state, a.payload.sub], [kidOf(OLD), 'previous', 'before'])
    const b = keyring.verify(kidless)
    assert.deepEqual([b.kid, b.state, b.payload.sub], [kidOf(OLD), 'previous', 'legacy'])
    const fresh = keyring.verify(keyring.sign({ sub: 'after' }))
    assert.deepEqual([fresh.kid, fresh.state], [kidOf(NEW), 'current'])
  })

  it('finalized: the grace key is removed and old tokens are refused', () => {
    const keyring = Keyring.fromEnv({ JWT_SECRET: NEW })
    throwsCode(() => keyring.verify(withKid), 'ERR_KEY_UNKNOWN', 'The token names an unknown key')
    throwsCode(() => keyring.verify(kidless), 'ERR_TOKEN_SIGNATURE', 'The token signature is invalid')
  })

  it('rollback: the old key signs again, tokens of the new one verify as previous', () => {
    const newToken = Keyring.fromEnv({ JWT_SECRET: NEW, JWT_SECRET_PREV: OLD }).sign({ sub: 'n' })
    const keyring = Keyring.fromEnv({ JWT_SECRET: OLD, JWT_SECRET_PREV: NEW })
    assert.equal(keyring.currentKid, kidOf(OLD))
    assert.deepEqual([keyring.verify(newToken).state, keyring.verify(withKid).state], ['previous', 'current'])
  })
})

describe('rotation through JWT_SECRET_CURRENT / JWT_SECRET_NEW', () => {
  const { withKid, kidless } = issuedBefore({ JWT_SECRET_CURRENT: OLD })

  it('grace: NEW signs, tokens of CURRENT verify with state previous', () => {
    const keyring = Keyring.fromEnv({ JWT_SECRET_CURRENT: OLD, JWT_SECRET_NEW: NEW, JWT_SECRET_ROTATION_DATE: '2025-06-01T00:00:00Z' })
    assert.equal(keyring.currentKid, kidOf(NEW))
    assert.deepEqual([keyring.verify(withKid).state, keyring.verify(kidless).state], ['previous', 'previous'])
  })

  it('finalized as JWT_SECRET=NEW: old tokens are refused', () => {
    const keyring = Keyring.fromEnv({ JWT_SECRET: NEW })
    throwsCode(() => keyring.verify(withKid), 'ERR_KEY_UNKNOWN')
    throwsCode(() => keyring.verify(kidless), 'ERR_TOKEN_SIGNATURE')
  })
})

describe('keyring.update', () => {
  it('swaps the whole key set for the next verification, verifiers included', () => {
    const keyring = Keyring.fromEnv({ JWT_SECRET: OLD })
    const verify = keyring.verifier()
    const before = keyring.sign({ sub: 'b' })
    keyring.update([{ secret: NEW, state: 'current' }, { secret: OLD, state: 'previous' }])
    assert.equal(keyring.currentKid, kidOf(NEW))
    assert.equal(verify(before).state, 'previous')
    const after = keyring.sign({ sub: 'a' })
    assert.equal(verify(after).kid, kidOf(NEW))
    keyring.update([{ secret: NEW, state: 'current' }])
    throwsCode(() => verify(before), 'ERR_KEY_UNKNOWN')
    assert.equal(verify(after).state, 'current')
  })

  it('an invalid set throws and changes nothing', () => {
    const keyring = Keyring.fromEnv({ JWT_SECRET: OLD })
    const token = keyring.sign({})
    const err = throwsCode(() => keyring.update([{ secret: NEW, state: 'previous' }, { secret: 'short', state: 'previous', label: 'JWT_SECRET_PREV' }]), 'ERR_CONFIG')
    assert.deepEqual(err.problems, [
      'JWT_SECRET_PREV: the secret is 5 bytes; at least 32 are required (generate one with `rekey gen`)',
      'no key is current: exactly one key must sign',
    ])
    assert.equal(keyring.currentKid, kidOf(OLD))
    assert.equal(keyring.verify(token).state, 'current')
    assert.equal(keyring.list().length, 1)
  })
})

describe('key states', () => {
  const oldKid = kidOf(OLD)
  const withKid = Keyring.fromKeys([{ secret: OLD, state: 'current' }]).sign({ sub: 'x' })
  const kidless = forgeHs({ alg: 'HS256' }, { sub: 'x' }, OLD)
  const ring = (state: KeyInput['state']): Keyring => Keyring.fromKeys([{ secret: NEW, state: 'current' }, { secret: OLD, state }])

  it('revoked: ERR_KEY_REVOKED, with or without kid', () => {
    const keyring = ring('revoked')
    throwsCode(() => keyring.verify(withKid), 'ERR_KEY_REVOKED', `The key ${oldKid} was revoked`)
    throwsCode(() => keyring.verify(kidless), 'ERR_KEY_REVOKED', `The key ${oldKid} was revoked`)
  })

  it('retired: ERR_KEY_RETIRED, with or without kid', () => {
    const keyring = ring('retired')
    throwsCode(() => keyring.verify(withKid), 'ERR_KEY_RETIRED', `The key ${oldKid} is retired`)
    throwsCode(() => keyring.verify(kidless), 'ERR_KEY_RETIRED', `The key ${oldKid} is retired`)
  })

  it('revoked or retired keys stay listed but leave the JWKS; next keys are published', () => {
    assert.deepEqual(ring('revoked').list().map((k) => k.state), ['current', 'revoked'])
    const keys = (['current', 'next', 'previous', 'retired', 'revoked'] as const).map((state) => ({ jwk: privateJwk('EdDSA', `ed-${state}`).jwk, state }))
    const keyring = Keyring.fromKeys(keys)
    assert.deepEqual(keyring.list().map((k) => k.kid), ['ed-current', 'ed-next', 'ed-previous', 'ed-retired', 'ed-revoked'])
    assert.deepEqual(keyring.jwks().keys.map((k) => k.kid), ['ed-current', 'ed-previous', 'ed-next'])
  })

  it('a forged kid-less token is a bad signature, not blamed on a cut key', () => {
    throwsCode(() => ring('revoked').verify(forgeHs({ alg: 'HS256' }, { sub: 'x' }, NEXT)), 'ERR_TOKEN_SIGNATURE')
  })

  it('next: verifies (state next) but does not sign', () => {
    const keyring = Keyring.fromKeys([{ secret: NEW, state: 'current' }, { secret: NEXT, state: 'next' }])
    assert.equal(keyring.currentKid, kidOf(NEW))
    assert.equal(keyring.verify(keyring.sign({})).kid, kidOf(NEW))
    const byNext = forgeHs({ alg: 'HS256', kid: kidOf(NEXT) }, { sub: 'n' }, NEXT)
    assert.deepEqual([keyring.verify(byNext).kid, keyring.verify(byNext).state], [kidOf(NEXT), 'next'])
    const kidlessNext = keyring.verify(forgeHs({ alg: 'HS256' }, { sub: 'n' }, NEXT))
    assert.deepEqual([kidlessNext.kid, kidlessNext.state], [kidOf(NEXT), 'next'])
  })

  it('next → current → previous: the published key takes over without refusing anything', () => {
    const keyring = Keyring.fromKeys([{ secret: NEW, state: 'current' }, { secret: NEXT, state: 'next' }])
    const early = keyring.sign({})
    keyring.update([{ secret: NEXT, state: 'current' }, { secret: NEW, state: 'previous' }])
    assert.equal(keyring.verify(early).state, 'previous')
    assert.equal(keyring.verify(keyring.sign({})).kid, kidOf(NEXT))
  })

  it('exactly one key is current', () => {
    assert.deepEqual(throwsCode(() => Keyring.fromKeys([{ secret: NEW, state: 'next' }]), 'ERR_CONFIG').problems, ['no key is current: exactly one key must sign'])
    assert.deepEqual(throwsCode(() => Keyring.fromKeys([{ secret: NEW, state: 'current' }, { secret: OLD, state: 'current' }]), 'ERR_CONFIG').problems, ['2 keys are current: exactly one key must sign'])
  })
})
