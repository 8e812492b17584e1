/**
 * The framework-free half of the middleware: options checked once, then a closure that
 * turns an `Authorization` header into a verified token or a 401 `RekeyError`.
 */
import type { VerifyOptions } from '../core/claims.ts'
import { RekeyError } from '../core/errors.ts'
import type { Keyring, VerifyResult } from '../core/keyring.ts'
import type { KeyState } from '../core/states.ts'
import type { Duration } from '../core/duration.ts'
import type { UsageOptions } from '../core/usage-counts.ts'
import { bearerToken, isAuthFailure } from './bearer.ts'
import { remoteKeyring, retryUnknownKid } from './remote-keyring.ts'

/** Options of both adapters: a keyring, the verify options, and optional hooks. */
export interface AuthOptions extends VerifyOptions {
  /** The keyring that verifies; a rotation (`keyring.update`) takes effect on the next request. Give this or `jwksUrl`. */
  keyring?: Keyring
  /**
   * Verify with a remote JWK Set instead of a keyring (`Keyring.fromJwks`): fetched at the first
   * request (503 `ERR_JWKS_UNAVAILABLE` while the host has never answered), refreshed by its
   * `Cache-Control`, refetched for an unknown kid at most once per `cooldown`.
   */
  jwksUrl?: string | URL
  /** With `jwksUrl`: the least time between refetches for unknown kids. Default 30 (seconds). */
  cooldown?: Duration
  /** With `jwksUrl`: report per-kid usage, as `Keyring.fromJwks(url, { usage })`. */
  usage?: UsageOptions
  /**
   * Called after the token verified, to refuse it anyway (a revoked session, a logged-out
   * user). Return `true` to answer 401 `ERR_TOKEN_REVOKED`. A result that is not a
   * boolean is a bug and is passed on as a `TypeError`; a thrown error or a rejection
   * goes to the framework's error handling (a 401 `RekeyError` is answered as such).
   */
  isRevoked?: (result: VerifyResult) => boolean | Promise<boolean>
  /** Called for each accepted token, e.g. to count verifications per kid. Must not throw. */
  onVerified?: (result: VerifyResult) => void
  /** Called with each 401 error (missing header included) before the answer. Must not throw. */
  onError?: (err: RekeyError) => void
  /**
   * The `token_use` claim a token must carry (`'access'` for rekey's access tokens), so a
   * refresh token signed with the same secret cannot be used as an access token: a token
   * whose `token_use` differs or is absent answers 401 `ERR_TOKEN_CLAIM`. Default `'access'`
   * when the keyring came from a purpose-specific variable (`JWT_ACCESS_SECRET`,
   * `JWT_REFRESH_SECRET`: `keyring.purpose`), else no check. `false` turns the check off.
   */
  tokenUse?: string | false
}

/** Which key verified the request's token. Never key material. */
export interface AuthKey {
  kid: string
  state: KeyState
}

/** Verifies one `Authorization` header value. Throws (or rejects with) a `RekeyError`. */
export type Authenticate = (authorization: unknown) => VerifyResult | Promise<VerifyResult>

const VERIFY_KEYS = ['audience', 'issuer', 'subject', 'clockTolerance', 'maxTokenAge', 'requiredClaims', 'currentDate'] as const
const HOOK_KEYS = ['isRevoked', 'onVerified', 'onError'] as const
const OWN_KEYS = ['keyring', 'tokenUse'] as const
const REMOTE_KEYS = ['jwksUrl', 'cooldown', 'usage'] as const

/**
 * Checks the options once and returns the per-request closure. Misuse throws a
 * `TypeError` naming every problem; `extraKeys` are the adapter's own options.
 */
export function createAuthenticator(options: AuthOptions, where: string, extraKeys: readonly string[] = []): Authenticate {
  if (typeof options !== 'object' || options === null) throw new TypeError(`${where}: options must be an object with a keyring`)
  const problems: string[] = []
  const keyring = options.keyring
  const remote = options.jwksUrl !== undefined
  if (remote && keyring !== undefined) problems.push('give keyring or jwksUrl, not both')
  // Duck-typed so a keyring from another copy of the package still works.
  if (!remote && (typeof keyring !== 'object' || keyring === null || typeof (keyring as Partial<Keyring>).verifier !== 'function')) {
    problems.push('keyring must be a rekey Keyring')
  }
  if (!remote && (options.cooldown !== undefined || options.usage !== undefined)) problems.push('cooldown and usage go with jwksUrl (a keyring takes usage itself)')
  for (const name of HOOK_KEYS) {
    if (options[name] !== undefined && typeof options[name] !== 'function') problems.push(`${name} must be a function`)
  }
  const tokenUseOption = options.tokenUse
  if (tokenUseOption !== undefined && tokenUseOption !== false && (typeof tokenUseOption !== 'string' || tokenUseOption === '')) {
    problems.push('tokenUse must be a non-empty string (such as "access") or false')
  }
  const known = new Set<string>([...OWN_KEYS, ...VERIFY_KEYS, ...HOOK_KEYS, ...REMOTE_KEYS, ...extraKeys])
  // A misspelt option would silently drop a check (`audiance`), so unknown names are refused.
  for (const name of Object.keys(options)) {
    if (!known.has(name)) problems.push(`unknown option "${name}"`)
  }
  if (problems.length > 0) throw new TypeError(`${where}: ${problems.join('; ')}`)

  const verifyOptions: Record<string, unknown> = {}
  for (const name of VERIFY_KEYS) {
    if (options[name] !== undefined) verifyOptions[name] = options[name]
  }
  let verify: (token: string) => VerifyResult | Promise<VerifyResult>
  try {
    verify = remote
      ? remoteKeyring(options.jwksUrl as string | URL, { ...(options.cooldown === undefined ? {} : { cooldown: options.cooldown }), ...(options.usage === undefined ? {} : { usage: options.usage }) }, verifyOptions as VerifyOptions)
      : retryUnknownKid(keyring as Keyring, (keyring as Keyring).verifier(verifyOptions as VerifyOptions))
  } catch (err) {
    if (err instanceof TypeError) throw new TypeError(`${where}: ${err.message}`)
    throw err
  }
  const { isRevoked, onVerified, onError } = options
  // Read once: a keyring's purpose is fixed when it is built from the environment.
  const purpose = remote ? undefined : (keyring as Keyring).purpose
  const tokenUse = tokenUseOption === false ? undefined : tokenUseOption ?? (purpose === undefined ? undefined : 'access')

  const refuse = (err: unknown): never => {
    if (onError !== undefined && isAuthFailure(err)) onError(err)
    throw err
  }
  const accept = (result: VerifyResult, revoked: unknown): VerifyResult => {
    if (revoked === true) refuse(new RekeyError('ERR_TOKEN_REVOKED', 'The token was revoked'))
    // Fail closed: a forgotten `return` must not let a revoked token through.
    if (revoked !== false) throw new TypeError(`${where}: isRevoked must return a boolean`)
    onVerified?.(result)
    return result
  }

  const checkUse = (result: VerifyResult): VerifyResult => {
    if (tokenUse !== undefined && result.payload.token_use !== tokenUse) {
      throw new RekeyError('ERR_TOKEN_CLAIM', `The token's "token_use" is not "${tokenUse}"`, { claim: 'token_use', kid: result.kid })
    }
    return result
  }

  const admit = (result: VerifyResult): VerifyResult | Promise<VerifyResult> => {
    if (isRevoked === undefined) {
      onVerified?.(result)
      return result
    }
    let revoked: boolean | Promise<boolean>
    try {
      revoked = isRevoked(result)
    } catch (err) {
      return refuse(err)
    }
    if (typeof revoked === 'boolean') return accept(result, revoked)
    return Promise.resolve(revoked).then((value) => accept(result, value), refuse)
  }

  return function authenticate(authorization) {
    let result: VerifyResult
    try {
      const outcome = verify(bearerToken(authorization))
      // Only a remote keyring's first fetch or an unknown kid's refetch is asynchronous.
      if (outcome instanceof Promise) return outcome.then(checkUse).then(admit, refuse)
      result = checkUse(outcome)
    } catch (err) {
      return refuse(err)
    }
    return admit(result)
  }
}
