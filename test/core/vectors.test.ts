/**
 * Published test vectors, each named by its RFC section. Keys are imported as JWKs through
 * `Keyring.fromKeys`; the tokens are the RFCs' own bytes.
 *
 * The RFC examples expire at 1300819380 (2011-03-22T18:43:00Z), so the clock is frozen just
 * before. Where an RFC's payload is plain text rather than a JSON claims set, the vector
 * still proves the signature check: the token gets past it and is refused only for its
 * payload, while the same token with a changed signature is refused for the signature.
 */
import assert from 'node:assert/strict'
import { afterEach, beforeEach, describe, it, mock } from 'node:test'
import { generateSecret, Keyring } from '../../src/index.ts'
import type { KeyInput } from '../../src/index.ts'
import { throwsCode } from './helpers.ts'

const RFC_EXP = 1_300_819_380
const RFC_PAYLOAD = 'eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ'
const RFC_CLAIMS = { iss: 'joe', exp: RFC_EXP, 'http://example.com/is_root': true }

/** Changes the first character of the signature, keeping it base64url. */
const tamper = (token: string): string => {
  const dot = token.lastIndexOf('.') + 1
  return token.slice(0, dot) + (token[dot] === 'A' ? 'B' : 'A') + token.slice(dot + 1)
}

/** A keyring where the vector's public-only key verifies beside a fresh signing key. */
const verifyOnly = (key: KeyInput['jwk'], kid: string): Keyring =>
  Keyring.fromKeys([{ secret: generateSecret(), state: 'current' }, { jwk: key, kid, state: 'previous' }])

beforeEach(() => mock.timers.enable({ apis: ['Date'], now: (RFC_EXP - 10) * 1000 }))
afterEach(() => mock.timers.reset())

describe('RFC 7515 Appendix A.1: HS256', () => {
  const jwk = { kty: 'oct', k: 'AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow' }
  // Header {"typ":"JWT",\r\n "alg":"HS256"}: no kid, so the kid-less path verifies it.
  const token = `eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.${RFC_PAYLOAD}.dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk`
  const keyring = Keyring.fromKeys([{ jwk, kid: 'rfc7515-a1', state: 'current' }])

  it('verifies, with the RFC claims', () => {
    assert.deepEqual(keyring.verify(token), { payload: RFC_CLAIMS, kid: 'rfc7515-a1', state: 'current' })
  })

  it('expires at its exp', () => {
    mock.timers.setTime(RFC_EXP * 1000)
    throwsCode(() => keyring.verify(token), 'ERR_TOKEN_EXPIRED')
  })

  it('a changed signature is refused', () => {
    throwsCode(() => keyring.verify(tamper(token)), 'ERR_TOKEN_SIGNATURE', 'The token signature is invalid')
  })

  it('the JWK alg defaults to HS256 for kty oct', () => {
    assert.equal(keyring.list()[0]?.alg, 'HS256')
  })
})

describe('RFC 7515 Appendix A.2: RS256 (public key of RFC 7517 Appendix A.1)', () => {
  const jwk = {
    kty: 'RSA',
    e: 'AQAB',
    alg: 'RS256',
    n: 'ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ',
  }
  const token = `eyJhbGciOiJSUzI1NiJ9.${RFC_PAYLOAD}.cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7AAuHIm4Bh-0Qc_lF5YKt_O8W2Fp5jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb1L07Qe7K0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqvhJ1phCnvWh6IeYI2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrBp0igcN_IoypGlUPQGe77Rw`

  it('verifies with the public key as a verify-only key', () => {
    const keyring = verifyOnly(jwk, '2011-04-29')
    assert.deepEqual(keyring.verify(token), { payload: RFC_CLAIMS, kid: '2011-04-29', state: 'previous' })
    throwsCode(() => keyring.verify(tamper(token)), 'ERR_TOKEN_SIGNATURE')
  })

  it('the public key is published in the JWKS as given', () => {
    const keyring = verifyOnly(jwk, '2011-04-29')
    assert.deepEqual(keyring.jwks(), { keys: [{ kty: 'RSA', n: jwk.n, e: 'AQAB', kid: '2011-04-29', alg: 'RS256', use: 'sig' }] })
  })
})

describe('RFC 7515 Appendix A.3: ES256', () => {
  const jwk = {
    kty: 'EC',
    crv: 'P-256',
    x: 'f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU',
    y: 'x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0',
    d: 'jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI',
  }
  // The signature is R || S (64 bytes), as rekey's ES256 verifier reads it (ieee-p1363).
  const token = `eyJhbGciOiJFUzI1NiJ9.${RFC_PAYLOAD}.DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q`

  it('verifies with the private JWK (alg inferred from crv P-256)', () => {
    const keyring = Keyring.fromKeys([{ jwk, kid: 'rfc7515-a3', state: 'current' }])
    assert.equal(keyring.list()[0]?.alg, 'ES256')
    assert.deepEqual(keyring.verify(token), { payload: RFC_CLAIMS, kid: 'rfc7515-a3', state: 'current' })
  })

  it('verifies with the public part only', () => {
    const { d: _d, ...pub } = jwk
    assert.equal(verifyOnly(pub, 'rfc7515-a3').verify(token).state, 'previous')
  })

  it('a changed signature, or the signature DER-encoded, is refused', () => {
    const keyring = Keyring.fromKeys([{ jwk, kid: 'rfc7515-a3', state: 'current' }])
    throwsCode(() => keyring.verify(tamper(token)), 'ERR_TOKEN_SIGNATURE')
    const raw = Buffer.from(token.split('.')[2] ?? '', 'base64url')
    const int = (b: Buffer): Buffer => (b[0] !== undefined && b[0] >= 0x80 ? Buffer.concat([Buffer.from([0]), b]) : b)
    const [r, s] = [int(raw.subarray(0, 32)), int(raw.subarray(32))]
    const der = Buffer.concat([Buffer.from([0x30, r.length + s.length + 4, 0x02, r.length]), r, Buffer.from([0x02, s.length]), s])
    throwsCode(() => keyring.verify(`${token.split('.').slice(0, 2).join('.')}.${der.toString('base64url')}`), 'ERR_TOKEN_SIGNATURE')
  })
})

describe('RFC 7515 Appendix A.5: an unsecured JWS', () => {
  it('is refused: alg none and an empty signature', () => {
    const keyring = Keyring.fromKeys([{ secret: generateSecret(), state: 'current' }])
    throwsCode(() => keyring.verify(`eyJhbGciOiJub25lIn0.${RFC_PAYLOAD}.`), 'ERR_TOKEN_MALFORMED', 'The token is not a compact JWS')
  })
})

describe('RFC 7520 §4.4: HMAC-SHA2 integrity protection (key of §3.5, with kid)', () => {
  const jwk = { kty: 'oct', kid: '018c0ae5-4d9b-471b-bfd6-eef314bc7037', use: 'sig', alg: 'HS256', k: 'hJtXIZ2uSN5kbQfbtTNWbpdmhkV8FJG-Onbc6mxCcYg' }
  // The payload is the §4 text ("It’s a dangerous business, Frodo, ..."), not a claims set.
  const token = 'eyJhbGciOiJIUzI1NiIsImtpZCI6IjAxOGMwYWU1LTRkOWItNDcxYi1iZmQ2LWVlZjMxNGJjNzAzNyJ9'
    + '.SXTigJlzIGEgZGFuZ2Vyb3VzIGJ1c2luZXNzLCBGcm9kbywgZ29pbmcgb3V0IHlvdXIgZG9vci4gWW91IHN0ZXAgb250byB0aGUgcm9hZCwgYW5kIGlmIHlvdSBkb24ndCBrZWVwIHlvdXIgZmVldCwgdGhlcmXigJlzIG5vIGtub3dpbmcgd2hlcmUgeW91IG1pZ2h0IGJlIHN3ZXB0IG9mZiB0by4'
    + '.s0h6KThzkfBBBkLspW1h84VsJZFTsPPqMDA7g1Md7p0'
  const keyring = Keyring.fromKeys([{ jwk, state: 'current' }])

  it('the JWK kid addresses the key', () => {
    assert.deepEqual(keyring.list(), [{ kid: '018c0ae5-4d9b-471b-bfd6-eef314bc7037', alg: 'HS256', state: 'current' }])
  })

  it('the signature verifies; the text payload is then refused as not JSON', () => {
    throwsCode(() => keyring.verify(token), 'ERR_TOKEN_MALFORMED', 'The payload is not JSON')
    throwsCode(() => keyring.verify(tamper(token)), 'ERR_TOKEN_SIGNATURE', 'The token signature is invalid')
  })

  it('under another key of the same kid, the signature is what fails', () => {
    const impostor = Keyring.fromKeys([{ secret: generateSecret(), kid: jwk.kid, state: 'current' }])
    throwsCode(() => impostor.verify(token), 'ERR_TOKEN_SIGNATURE')
  })
})

describe('RFC 8037 Appendix A.4: Ed25519', () => {
  const jwk = { kty: 'OKP', crv: 'Ed25519', d: 'nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A', x: '11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo' }
  // Payload "Example of Ed25519 signing": plain text again.
  const token = 'eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc.hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg'
  const keyring = Keyring.fromKeys([{ jwk, kid: 'rfc8037', state: 'current' }])

  it('the signature verifies (alg inferred from crv Ed25519); the text payload is refused', () => {
    assert.equal(keyring.list()[0]?.alg, 'EdDSA')
    throwsCode(() => keyring.verify(token), 'ERR_TOKEN_MALFORMED', 'The payload is not JSON')
    throwsCode(() => keyring.verify(tamper(token)), 'ERR_TOKEN_SIGNATURE')
  })

  it('the public JWK is the RFC\'s', () => {
    assert.deepEqual(keyring.jwks().keys, [{ kty: 'OKP', crv: 'Ed25519', x: jwk.x, kid: 'rfc8037', alg: 'EdDSA', use: 'sig' }])
  })
})
