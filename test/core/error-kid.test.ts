/** A failed verification names the key it was about (`RekeyError.kid`), never a forged one. */
import assert from 'node:assert/strict'
import { createHmac } from 'node:crypto'
import { describe, it } from 'node:test'
import { generateSecret, isRekeyError, Keyring } from '../../src/index.ts'

const A = generateSecret()
const B = generateSecret()

function kidOf(fn: () => unknown): string | undefined {
  try {
    fn()
  } catch (err) {
    assert.ok(isRekeyError(err))
    return err.kid
  }
  assert.fail('expected a RekeyError')
}

function hs256(payload: object, secret: string, header: object = { alg: 'HS256', typ: 'JWT' }): string {
  const input = `${Buffer.from(JSON.stringify(header)).toString('base64url')}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}`
  return `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`
}

describe('RekeyError.kid', () => {
  const old = Keyring.fromKeys([{ secret: A, state: 'current' }])
  const ring = Keyring.fromKeys([{ secret: B, state: 'current' }, { secret: A, state: 'previous' }])
  const kidA = old.currentKid
  const kidB = ring.currentKid

  it('names the key of an expired token, a bad claim and a bad signature', () => {
    const expired = ring.sign({ sub: 'u', exp: 1000 })
    assert.equal(kidOf(() => ring.verify(expired)), kidB)
    assert.equal(kidOf(() => ring.verify(ring.sign({ sub: 'u' }), { audience: 'api' })), kidB)
    const [h, p] = ring.sign({ sub: 'u' }).split('.')
    assert.equal(kidOf(() => ring.verify(`${h}.${p}.${'A'.repeat(43)}`)), kidB)
    assert.equal(kidOf(() => ring.verify(old.sign({ sub: 'u', exp: 1000 }))), kidA, 'the previous key, by its kid')
  })

  it('names the key that signed a kid-less token', () => {
    assert.equal(kidOf(() => ring.verify(hs256({ sub: 'u', exp: 1000 }, A))), kidA)
  })

  it('names no kid for a kid the keyring does not hold, or a malformed token', () => {
    assert.equal(kidOf(() => ring.verify(hs256({ sub: 'u' }, A, { alg: 'HS256', kid: 'forged-kid' }))), undefined)
    assert.equal(kidOf(() => ring.verify('not.a.token')), undefined)
  })
})
