/**
 * Interop with the three libraries apps already use: tokens rekey signs verify in jose,
 * fast-jwt and jsonwebtoken, and tokens they sign (with and without `kid`) verify in rekey.
 * A string secret is an HMAC key through its UTF-8 bytes in all four.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { createLocalJWKSet, jwtVerify, SignJWT } from 'jose'
import { createSigner, createVerifier } from 'fast-jwt'
import jwt from 'jsonwebtoken'
import type { KeyObject } from 'node:crypto'
import { Keyring } from '../../src/index.ts'
import { privateJwk } from './helpers.ts'

type Hs = 'HS256' | 'HS384' | 'HS512'
type Asym = 'EdDSA' | 'ES256' | 'RS256'

/** How one peer signs: its own API, with or without a kid header. */
interface Peer {
  name: string
  /** jsonwebtoken 9 has no EdDSA. */
  algs: readonly string[]
  sign(claims: Record<string, unknown>, alg: string, key: string | KeyObject, kid: string | undefined): Promise<string>
}

const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s)

const PEERS: readonly Peer[] = [
  {
    name: 'jose',
    algs: ['HS256', 'HS384', 'HS512', 'EdDSA', 'ES256', 'RS256'],
    sign: (claims, alg, key, kid) => new SignJWT(claims)
      .setProtectedHeader(kid === undefined ? { alg } : { alg, kid })
      .setIssuedAt()
      .setExpirationTime('5m')
      .sign(typeof key === 'string' ? utf8(key) : key),
  },
  {
    name: 'fast-jwt',
    algs: ['HS256', 'HS384', 'HS512', 'EdDSA', 'ES256', 'RS256'],
    sign: async (claims, alg, key, kid) => {
      const pem = typeof key === 'string' ? key : key.export({ format: 'pem', type: 'pkcs8' }).toString()
      const signer = createSigner({ key: pem, algorithm: alg as 'HS256', expiresIn: 300_000, ...(kid === undefined ? {} : { kid }) })
      return signer(claims)
    },
  },
  {
    name: 'jsonwebtoken',
    algs: ['HS256', 'HS384', 'HS512', 'ES256', 'RS256'],
    sign: async (claims, alg, key, kid) => jwt.sign(claims, key, { algorithm: alg as jwt.Algorithm, expiresIn: '5m', ...(kid === undefined ? {} : { keyid: kid }) }),
  },
]

const secretA = 'interop-secret-A-0123456789abcdef0123456789abcdef'
const secretB = 'interop-secret-B-fedcba9876543210fedcba9876543210'
// Multi-byte characters: the HMAC key is the UTF-8 bytes, not UTF-16 units or latin1.
const secretUtf8 = 'clé-secrète-ünïcødé-🔑-0123456789abcdef'

describe('HMAC tokens rekey signs verify in the peers', () => {
  for (const alg of ['HS256', 'HS384', 'HS512'] as const satisfies readonly Hs[]) {
    for (const secret of [secretA, secretUtf8]) {
      const label = secret === secretUtf8 ? `${alg}, non-ASCII secret` : alg
      const keyring = Keyring.fromKeys([{ secret, alg, state: 'current' }])
      const token = keyring.sign({ sub: 'user-1', role: 'admin' })

      it(`${label}: jose jwtVerify`, async () => {
        const { payload, protectedHeader } = await jwtVerify(token, utf8(secret), { algorithms: [alg] })
        assert.equal(payload.sub, 'user-1')
        assert.equal(payload.role, 'admin')
        assert.deepEqual(protectedHeader, { alg, typ: 'JWT', kid: keyring.currentKid })
      })

      it(`${label}: fast-jwt createVerifier`, () => {
        const payload = createVerifier({ key: secret, algorithms: [alg] })(token) as Record<string, unknown>
        assert.equal(payload.sub, 'user-1')
      })

      it(`${label}: jsonwebtoken verify`, () => {
        const payload = jwt.verify(token, secret, { algorithms: [alg] }) as jwt.JwtPayload
        assert.equal(payload.sub, 'user-1')
        assert.equal(payload.exp, (payload.iat ?? 0) + 900, 'default lifetime is 900 s')
      })

      it(`${label}: the peers refuse it under another secret (the check is real)`, async () => {
        await assert.rejects(jwtVerify(token, utf8(secretB), { algorithms: [alg] }), { code: 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED' })
        assert.throws(() => jwt.verify(token, secretB), { name: 'JsonWebTokenError', message: 'invalid signature' })
      })
    }
  }
})

describe('asymmetric tokens rekey signs verify in the peers', () => {
  for (const alg of ['EdDSA', 'ES256', 'RS256'] as const satisfies readonly Asym[]) {
    const { jwk, publicKey } = privateJwk(alg, `${alg.toLowerCase()}-2025`)
    const keyring = Keyring.fromEnv({ JWT_KEYS: JSON.stringify({ keys: [jwk] }) })
    const token = keyring.sign({ sub: 'user-2' })
    const pem = publicKey.export({ format: 'pem', type: 'spki' }).toString()

    it(`${alg}: jose with the JWKS from keyring.jwks()`, async () => {
      const jwks = keyring.jwks()
      assert.equal(jwks.keys.length, 1)
      assert.equal(jwks.keys[0]?.d, undefined, 'the JWKS holds no private part')
      const { payload, protectedHeader } = await jwtVerify(token, createLocalJWKSet(jwks as Parameters<typeof createLocalJWKSet>[0]))
      assert.equal(payload.sub, 'user-2')
      assert.equal(protectedHeader.kid, `${alg.toLowerCase()}-2025`)
      assert.equal(protectedHeader.alg, alg)
    })

    it(`${alg}: fast-jwt with the public key`, () => {
      const payload = createVerifier({ key: pem, algorithms: [alg] })(token) as Record<string, unknown>
      assert.equal(payload.sub, 'user-2')
    })

    if (alg !== 'EdDSA') {
      it(`${alg}: jsonwebtoken with the public key`, () => {
        const payload = jwt.verify(token, pem, { algorithms: [alg] }) as jwt.JwtPayload
        assert.equal(payload.sub, 'user-2')
      })
    }

    it(`${alg}: a peer refuses it under another public key (the check is real)`, async () => {
      const other = privateJwk(alg, 'other').publicKey.export({ format: 'pem', type: 'spki' }).toString()
      assert.throws(() => createVerifier({ key: other, algorithms: [alg] })(token), { code: 'FAST_JWT_INVALID_SIGNATURE' })
    })
  }
})

describe('HMAC tokens the peers sign verify in rekey', () => {
  for (const alg of ['HS256', 'HS384', 'HS512'] as const satisfies readonly Hs[]) {
    // secretA signs now, secretB is the grace key.
    const keyring = Keyring.fromKeys([
      { secret: secretA, alg, state: 'current' },
      { secret: secretB, alg, state: 'previous' },
    ])
    const [current, previous] = [keyring.currentKid, keyring.list().find((k) => k.state === 'previous')?.kid]
    for (const peer of PEERS) {
      it(`${peer.name} ${alg} with kid`, async () => {
        const token = await peer.sign({ sub: 'p' }, alg, secretA, current)
        const result = keyring.verify(token)
        assert.deepEqual([result.kid, result.state, result.payload.sub], [current, 'current', 'p'])
      })

      it(`${peer.name} ${alg} with the previous key's kid`, async () => {
        const token = await peer.sign({ sub: 'p' }, alg, secretB, previous)
        const result = keyring.verify(token)
        assert.deepEqual([result.kid, result.state], [previous, 'previous'])
      })

      it(`${peer.name} ${alg} without kid: the current key first`, async () => {
        const token = await peer.sign({ sub: 'p' }, alg, secretA, undefined)
        const result = keyring.verify(token)
        assert.deepEqual([result.kid, result.state], [current, 'current'])
      })

      it(`${peer.name} ${alg} without kid: then the previous key (a legacy token)`, async () => {
        const token = await peer.sign({ sub: 'legacy' }, alg, secretB, undefined)
        const result = keyring.verify(token)
        assert.deepEqual([result.kid, result.state, result.payload.sub], [previous, 'previous', 'legacy'])
      })

      it(`${peer.name} ${alg} signed with a secret rekey does not hold is refused`, async () => {
        const token = await peer.sign({ sub: 'p' }, alg, secretUtf8, undefined)
        assert.throws(() => keyring.verify(token), { code: 'ERR_TOKEN_SIGNATURE', message: 'The token signature is invalid' })
      })
    }
  }
})

describe('legacy jsonwebtoken tokens through JWT_SECRET / JWT_SECRET_PREV', () => {
  it('a kid-less token signed yesterday with the old JWT_SECRET verifies as previous', () => {
    const legacy = jwt.sign({ sub: 'u-42' }, secretB, { expiresIn: '1h' })
    const keyring = Keyring.fromEnv({ JWT_SECRET: secretA, JWT_SECRET_PREV: secretB })
    const result = keyring.verify(legacy)
    assert.equal(result.state, 'previous')
    assert.equal(result.payload.sub, 'u-42')
    assert.notEqual(result.kid, keyring.currentKid)
  })

  it('a non-ASCII secret from the environment is the same HMAC key jsonwebtoken used', () => {
    const legacy = jwt.sign({ sub: 'u-43' }, secretUtf8)
    const result = Keyring.fromEnv({ JWT_SECRET: secretUtf8 }).verify(legacy)
    assert.deepEqual([result.state, result.payload.sub], ['current', 'u-43'])
  })
})

describe('asymmetric tokens the peers sign verify in rekey', () => {
  for (const alg of ['EdDSA', 'ES256', 'RS256'] as const satisfies readonly Asym[]) {
    const cur = privateJwk(alg, `${alg}-cur`)
    const prev = privateJwk(alg, `${alg}-prev`)
    const keyring = Keyring.fromEnv({
      JWT_KEYS: JSON.stringify([{ ...cur.jwk, status: 'current' }, { ...prev.jwk, status: 'previous' }]),
    })
    for (const peer of PEERS.filter((p) => p.algs.includes(alg))) {
      it(`${peer.name} ${alg} with kid`, async () => {
        const result = keyring.verify(await peer.sign({ sub: 'a' }, alg, cur.privateKey, `${alg}-cur`))
        assert.deepEqual([result.kid, result.state, result.payload.sub], [`${alg}-cur`, 'current', 'a'])
      })

      it(`${peer.name} ${alg} without kid: current, then previous`, async () => {
        const a = keyring.verify(await peer.sign({ sub: 'a' }, alg, cur.privateKey, undefined))
        assert.deepEqual([a.kid, a.state], [`${alg}-cur`, 'current'])
        const b = keyring.verify(await peer.sign({ sub: 'b' }, alg, prev.privateKey, undefined))
        assert.deepEqual([b.kid, b.state], [`${alg}-prev`, 'previous'])
      })

      it(`${peer.name} ${alg} under the right kid but another key is refused`, async () => {
        const stranger = privateJwk(alg, 'x').privateKey
        const token = await peer.sign({ sub: 'a' }, alg, stranger, `${alg}-cur`)
        assert.throws(() => keyring.verify(token), { code: 'ERR_TOKEN_SIGNATURE' })
      })
    }
  }
})
