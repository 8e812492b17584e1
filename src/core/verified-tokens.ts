/**
 * Tokens whose signature one key set has already verified, so a token presented again (a
 * client calls `/api/auth/me` with the same access token for its whole lifetime) skips the
 * HMAC or signature check, the base64url decoding and the JSON parse. Lives inside one key
 * set: a keyring update (rotation, revocation, retirement) starts with an empty one.
 *
 * Only the signature and the parse are remembered. The claims (exp, nbf, iss, aud...) are
 * checked again on every use, against the clock of that use. The key is the whole token
 * string, signature included: a hit needs the exact bytes of a token this key set verified,
 * so no forged or altered token can match one.
 */
import type { Claims } from './claims.ts'
import type { KeyState } from './states.ts'

/** A token this key set verified: its claims (frozen, shared by every hit) and its key. */
export interface VerifiedToken {
  readonly payload: Claims
  readonly kid: string
  readonly state: KeyState
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    for (const inner of Object.values(value)) deepFreeze(inner)
    Object.freeze(value)
  }
  return value
}

/** How many tokens one key set remembers: a few MB at most (a token and its claims are under 1 KB). */
export const VERIFIED_TOKENS_LIMIT = 4096

/** The signature segment: what the map hashes (a few dozen characters, not the whole token). */
function signatureOf(token: string): string {
  return token.slice(token.lastIndexOf('.') + 1)
}

/**
 * A bounded map of token → verification; forgets everything when full (no per-hit
 * bookkeeping). Entries are found by signature and kept only for the exact same token.
 */
export class VerifiedTokens {
  readonly #entries = new Map<string, { readonly token: string, readonly verified: VerifiedToken }>()

  /** The earlier verification of exactly this token, if this key set remembers one. */
  get(token: string): VerifiedToken | undefined {
    const entry = this.#entries.get(signatureOf(token))
    // The whole token must match: the signature alone does not say which header and payload it signed.
    return entry !== undefined && entry.token === token ? entry.verified : undefined
  }

  /**
   * Remembers a verification and returns it frozen: callers share the claims object, so none
   * of them may change it for the others.
   */
  add(token: string, verified: VerifiedToken): VerifiedToken {
    const frozen = deepFreeze({ payload: verified.payload, kid: verified.kid, state: verified.state })
    if (this.#entries.size >= VERIFIED_TOKENS_LIMIT) this.#entries.clear()
    this.#entries.set(signatureOf(token), { token, verified: frozen })
    return frozen
  }

  /** Forgets one token (its claims no longer pass, e.g. it expired). */
  delete(token: string): void {
    const signature = signatureOf(token)
    if (this.#entries.get(signature)?.token === token) this.#entries.delete(signature)
  }
}
