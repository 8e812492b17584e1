import { createHmac, sign as cryptoSign, verify as cryptoVerify, type KeyObject } from 'node:crypto'
import { macEquals } from './constant-time.ts'

/** Algorithms rekey signs and verifies with. The algorithm is bound to the key, never read from a token. */
export type Algorithm = 'HS256' | 'HS384' | 'HS512' | 'EdDSA' | 'ES256' | 'RS256'

/** Every supported algorithm. */
export const ALGORITHMS: readonly Algorithm[] = Object.freeze(['HS256', 'HS384', 'HS512', 'EdDSA', 'ES256', 'RS256'])

/** Algorithms of keys rekey manages in the store (REKEY_ACCESS_KEY_ALG); refresh keys are always HS256. */
export type ManagedAlg = 'HS256' | 'EdDSA' | 'ES256' | 'RS256'

/** Every algorithm of managed keys: the one list the settings, the key service and the docs follow. */
export const MANAGED_ALGORITHMS: readonly ManagedAlg[] = Object.freeze(['HS256', 'EdDSA', 'ES256', 'RS256'])

/** Narrows an unknown value to a supported algorithm. */
export function isAlgorithm(value: unknown): value is Algorithm {
  return typeof value === 'string' && (ALGORITHMS as readonly string[]).includes(value)
}

/** True for the HMAC algorithms (shared secrets). */
export function isSymmetric(alg: Algorithm): boolean {
  return alg === 'HS256' || alg === 'HS384' || alg === 'HS512'
}

/** Checks a signature over the signing input; false on any mismatch, never throws. */
export type VerifyFn = (signingInput: string, signature: string) => boolean
/** Signs the signing input, returning the base64url signature. */
export type SignFn = (signingInput: string) => string

const HMAC_HASH = { HS256: 'sha256', HS384: 'sha384', HS512: 'sha512' } as const

/**
 * A verifier for an HMAC key. The MAC is compared as base64url text, so a signature in
 * another alphabet or with other trailing bits (same bytes, other text) is refused too.
 */
function hmacVerifier(alg: 'HS256' | 'HS384' | 'HS512', key: KeyObject): VerifyFn {
  const hash = HMAC_HASH[alg]
  const chars = alg === 'HS256' ? 43 : alg === 'HS384' ? 64 : 86
  return (signingInput, signature) => {
    if (signature.length !== chars) return false
    return macEquals(createHmac(hash, key).update(signingInput).digest('base64url'), signature)
  }
}

function hmacSigner(alg: 'HS256' | 'HS384' | 'HS512', key: KeyObject): SignFn {
  const hash = HMAC_HASH[alg]
  return (signingInput) => createHmac(hash, key).update(signingInput).digest('base64url')
}

function asymmetricParams(alg: Exclude<Algorithm, 'HS256' | 'HS384' | 'HS512'>): { digest: string | null, dsaEncoding?: 'ieee-p1363' } {
  if (alg === 'EdDSA') return { digest: null }
  if (alg === 'ES256') return { digest: 'sha256', dsaEncoding: 'ieee-p1363' }
  return { digest: 'sha256' }
}

/** The verify function bound to one key. `key` is a secret or a public key. */
export function verifierFor(alg: Algorithm, key: KeyObject): VerifyFn {
  if (alg === 'HS256' || alg === 'HS384' || alg === 'HS512') return hmacVerifier(alg, key)
  const { digest, dsaEncoding } = asymmetricParams(alg)
  const keyArg = dsaEncoding === undefined ? key : { key, dsaEncoding }
  return (signingInput, signature) => {
    const sig = Buffer.from(signature, 'base64url')
    // Refuse non-canonical encodings: the same bytes must encode back to the same text.
    if (sig.length === 0 || sig.toString('base64url') !== signature) return false
    try {
      return cryptoVerify(digest, Buffer.from(signingInput), keyArg, sig)
    } catch {
      return false
    }
  }
}

/** The sign function bound to one key. `key` is a secret or a private key. */
export function signerFor(alg: Algorithm, key: KeyObject): SignFn {
  if (alg === 'HS256' || alg === 'HS384' || alg === 'HS512') return hmacSigner(alg, key)
  const { digest, dsaEncoding } = asymmetricParams(alg)
  const keyArg = dsaEncoding === undefined ? key : { key, dsaEncoding }
  return (signingInput) => cryptoSign(digest, Buffer.from(signingInput), keyArg).toString('base64url')
}
