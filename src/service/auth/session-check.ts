/**
 * The one session check, for access tokens and the dashboard cookie alike: the global
 * not-before (an emergency), the session (`sid`) not ended, the user still existing, and the
 * user's token version (logout-all, password reset) not past the one the credential carries.
 */
import { RekeyError } from '../../core/errors.ts'
import type { CachedUser, RevocationCache } from './revocations.ts'

/** What a credential says about its session. Times in epoch seconds. */
export interface SessionClaims {
  readonly userId: string
  /** When the credential was issued. */
  readonly iat: number
  /** The user's token version when it was issued. */
  readonly ver: number
  /**
   * The session (family) id. Access tokens issued before sessions were named carry none; they
   * are still checked against everything else and expire within one access-token lifetime.
   */
  readonly sid: string | undefined
}

function revoked(message: string): RekeyError {
  return new RekeyError('ERR_TOKEN_REVOKED', message)
}

/**
 * The credential's user, or `ERR_TOKEN_REVOKED` when the session has ended. Synchronous when
 * the user is cached (the common case: no store read on the hot path).
 */
export function checkSession(revocations: RevocationCache, claims: SessionClaims): CachedUser | Promise<CachedUser> {
  if (claims.iat < revocations.notBefore) throw revoked('Every session was ended by an emergency (issued before the global not-before)')
  if (claims.sid !== undefined && revocations.isSessionEnded(claims.sid)) throw revoked('The session has ended')
  const cached = revocations.peek(claims.userId)
  if (cached !== undefined) return checkUser(cached, claims)
  return revocations.getUser(claims.userId).then((user) => checkUser(user, claims))
}

function checkUser(user: CachedUser | null, claims: SessionClaims): CachedUser {
  if (user === null) throw revoked('The user no longer exists')
  if (claims.ver < user.tokenVersion) throw revoked('The token was revoked')
  return user
}
