import { createPrivateKey, createPublicKey, createSecretKey, KeyObject, type JsonWebKey } from 'node:crypto'
import { isAlgorithm, isSymmetric, signerFor, verifierFor, type Algorithm, type SignFn, type VerifyFn } from './algorithms.ts'
import { deriveKid } from './kid.ts'
import type { KeyState } from './states.ts'

/** The fewest bytes a shared secret may have. */
export const MIN_SECRET_BYTES = 32

/** What a caller hands the keyring for one key: a shared secret or a JWK, and its state. */
export interface KeyInput {
  /** A shared secret. Its UTF-8 bytes (for a string) are the HMAC key, as jsonwebtoken uses them. */
  secret?: string | Uint8Array | KeyObject
  /** A JWK: `oct` for HMAC, or an `OKP`/`EC`/`RSA` private key (public only for verify-only keys). */
  jwk?: JsonWebKey
  /** Defaults to the JWK's `kid`, else to one derived from the secret. */
  kid?: string
  /** Defaults to the JWK's `alg`, else HS256. */
  alg?: Algorithm
  state: KeyState
  createdAt?: string
  activatedAt?: string
  retireAfter?: string
  /** Where the key came from (`JWT_SECRET`), for messages. Default: its kid or position. */
  label?: string
}

/** What anyone may know about a key: never its material. */
export interface KeyInfo {
  kid: string
  alg: Algorithm
  state: KeyState
  createdAt?: string
  activatedAt?: string
  retireAfter?: string
}

/** A key as the keyring holds it: material only inside the sign/verify closures. */
export interface KeyEntry {
  readonly info: Readonly<KeyInfo>
  readonly kid: string
  readonly alg: Algorithm
  readonly state: KeyState
  readonly verify: VerifyFn
  /** Absent for public-only keys. */
  readonly sign: SignFn | undefined
  /** The base64url header rekey signs with this key: `{"alg","typ":"JWT","kid"}`. */
  readonly header: string
  /** The public JWK of an asymmetric key, for JWKS. */
  readonly publicJwk: Readonly<Record<string, unknown>> | undefined
  /** Bytes of a shared secret, to refuse weak ones; 0 for asymmetric keys. */
  readonly secretBytes: number
}

/** The problem of a shared secret under {@link MIN_SECRET_BYTES}, or undefined when it is long enough. */
export function weakSecretProblem(label: string, entry: KeyEntry): string | undefined {
  if (entry.secretBytes === 0 || entry.secretBytes >= MIN_SECRET_BYTES) return undefined
  return `${label}: the secret is ${entry.secretBytes} bytes; at least ${MIN_SECRET_BYTES} are required (generate one with \`rekey gen\`)`
}

/** A problem found while building a key; the caller gathers them into one error. */
export class KeyProblem extends Error {
  readonly weak: boolean
  constructor(message: string, weak = false) {
    super(message)
    this.weak = weak
  }
}

const KID_PATTERN = /^[\x21-\x7e]{1,128}$/

function secretKeyOf(secret: string | Uint8Array | KeyObject): KeyObject {
  if (secret instanceof KeyObject) {
    if (secret.type !== 'secret') throw new KeyProblem('a shared secret must be a secret KeyObject')
    return secret
  }
  if (typeof secret === 'string') return createSecretKey(Buffer.from(secret, 'utf8'))
  return createSecretKey(Buffer.from(secret))
}

const EXPECTED_KEY_TYPE: Readonly<Record<Exclude<Algorithm, 'HS256' | 'HS384' | 'HS512'>, { kty: string, check: (k: KeyObject) => boolean }>> = {
  EdDSA: { kty: 'OKP', check: (k) => k.asymmetricKeyType === 'ed25519' },
  ES256: { kty: 'EC', check: (k) => k.asymmetricKeyType === 'ec' && k.asymmetricKeyDetails?.namedCurve === 'prime256v1' },
  RS256: { kty: 'RSA', check: (k) => k.asymmetricKeyType === 'rsa' && (k.asymmetricKeyDetails?.modulusLength ?? 0) >= 2048 },
}

function algOfJwk(jwk: JsonWebKey, given: Algorithm | undefined, label: string): Algorithm {
  const alg = given ?? jwk.alg
  if (alg === undefined) {
    if (jwk.kty === 'oct') return 'HS256'
    if (jwk.kty === 'OKP' && jwk.crv === 'Ed25519') return 'EdDSA'
    if (jwk.kty === 'EC' && jwk.crv === 'P-256') return 'ES256'
    throw new KeyProblem(`${label}: "alg" is required for kty ${String(jwk.kty)}`)
  }
  if (!isAlgorithm(alg)) throw new KeyProblem(`${label}: unsupported alg ${JSON.stringify(String(alg)).slice(0, 40)}`)
  return alg
}

// An EC JWK whose "d" does not belong to its "x"/"y" imports fine, then signs tokens that no
// one verifies (or throws at the first sign when "d" is out of range): test the pair once.
function pairMatches(alg: Algorithm, signKey: KeyObject, verifyKey: KeyObject): boolean {
  try {
    return verifierFor(alg, verifyKey)('rekey/pair-check', signerFor(alg, signKey)('rekey/pair-check'))
  } catch {
    return false
  }
}

/** Builds a key from its input. Throws {@link KeyProblem} with a message that names no secret. */
export function createKeyEntry(input: KeyInput, label: string): KeyEntry {
  let alg: Algorithm
  let verifyKey: KeyObject
  let signKey: KeyObject | undefined
  let kid = input.kid
  let secretBytes = 0
  let publicJwk: Record<string, unknown> | undefined

  if (input.secret !== undefined && input.jwk !== undefined) throw new KeyProblem(`${label}: give a secret or a jwk, not both`)
  if (input.secret !== undefined) {
    alg = input.alg ?? 'HS256'
    if (!isSymmetric(alg)) throw new KeyProblem(`${label}: a shared secret needs an HS* algorithm, not ${alg}`)
    verifyKey = secretKeyOf(input.secret)
    signKey = verifyKey
    secretBytes = verifyKey.symmetricKeySize ?? 0
    if (secretBytes === 0) throw new KeyProblem(`${label}: the secret is empty`)
    kid ??= deriveKid(verifyKey)
  } else if (input.jwk !== undefined) {
    const jwk = input.jwk
    if (typeof jwk !== 'object' || jwk === null) throw new KeyProblem(`${label}: not a JWK object`)
    alg = algOfJwk(jwk, input.alg, label)
    kid ??= typeof jwk.kid === 'string' ? jwk.kid : undefined
    if (kid === undefined) throw new KeyProblem(`${label}: "kid" is required`)
    if (isSymmetric(alg)) {
      if (jwk.kty !== 'oct' || typeof jwk.k !== 'string') throw new KeyProblem(`${label}: ${alg} needs an "oct" JWK with "k"`)
      verifyKey = createSecretKey(Buffer.from(jwk.k, 'base64url'))
      signKey = verifyKey
      secretBytes = verifyKey.symmetricKeySize ?? 0
      if (secretBytes === 0) throw new KeyProblem(`${label}: the secret is empty`)
    } else {
      const expected = EXPECTED_KEY_TYPE[alg as Exclude<Algorithm, 'HS256' | 'HS384' | 'HS512'>]
      if (jwk.kty !== expected.kty) throw new KeyProblem(`${label}: ${alg} needs a JWK of kty ${expected.kty}`)
      try {
        if (jwk.d !== undefined) {
          signKey = createPrivateKey({ key: jwk, format: 'jwk' })
          verifyKey = createPublicKey(signKey)
        } else {
          verifyKey = createPublicKey({ key: jwk, format: 'jwk' })
        }
      } catch {
        throw new KeyProblem(`${label}: the JWK could not be imported`)
      }
      if (!expected.check(verifyKey)) throw new KeyProblem(`${label}: the key does not fit ${alg} (curve or size)`)
      if (signKey !== undefined && !pairMatches(alg, signKey, verifyKey)) throw new KeyProblem(`${label}: the private and public parts of the JWK do not match`)
      const { kty, crv, x, y, n, e } = verifyKey.export({ format: 'jwk' })
      publicJwk = Object.freeze(Object.fromEntries(Object.entries({ kty, crv, x, y, n, e, kid, alg, use: 'sig' }).filter(([, v]) => v !== undefined)))
    }
  } else {
    throw new KeyProblem(`${label}: no secret and no jwk`)
  }

  if (!KID_PATTERN.test(kid)) throw new KeyProblem(`${label}: kid must be 1 to 128 printable ASCII characters`)
  const info: KeyInfo = { kid, alg, state: input.state }
  if (input.createdAt !== undefined) info.createdAt = input.createdAt
  if (input.activatedAt !== undefined) info.activatedAt = input.activatedAt
  if (input.retireAfter !== undefined) info.retireAfter = input.retireAfter
  return Object.freeze({
    info: Object.freeze(info),
    kid,
    alg,
    state: input.state,
    verify: verifierFor(alg, verifyKey),
    sign: signKey === undefined ? undefined : signerFor(alg, signKey),
    header: Buffer.from(JSON.stringify({ alg, typ: 'JWT', kid })).toString('base64url'),
    publicJwk,
    secretBytes,
  })
}
