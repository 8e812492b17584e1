/**
 * The auth operations behind the HTTP routes: register, login, refresh with rotation and reuse
 * detection, logout, logout-all, and access-token authentication from memory.
 */
import { createHash, randomUUID } from 'node:crypto'
import { RekeyError, isRekeyError } from '../../core/errors.ts'
import { canonicalEmail } from '../../core/email.ts'
import type { Claims } from '../../core/claims.ts'
import type { VerifyResult } from '../../core/keyring.ts'
import { masterKeyObject, openWithAny, seal, type MasterKey } from '../../core/seal.ts'
import { hasCode } from '../../store/errors.ts'
import type { Store } from '../../store/store.ts'
import type { ComputeAuditHash } from '../../store/types.ts'
import { auditWrite } from '../audit/audit-hash.ts'
import type { Clock } from '../clock.ts'
import { ServiceError } from '../errors.ts'
import type { KeyService } from '../keys/keys.ts'
import type { ServiceMetrics } from '../metrics/metrics.ts'
import type { PasswordHasher } from './passwords.ts'
import type { CachedUser, RevocationCache } from './revocations.ts'
import { checkCredentials, normalizeEmail } from './credentials.ts'
import { LoginThrottle } from './login-throttle.ts'
import { checkSession } from './session-check.ts'
import type { UserRecord } from '../../store/types.ts'

export { normalizeEmail } from './credentials.ts'

/** What login and refresh answer. */
export interface TokenPair {
  readonly accessToken: string
  readonly refreshToken: string
  readonly tokenType: 'Bearer'
  /** Seconds until the access token expires. */
  readonly expiresIn: number
}

/** A verified access token. */
export interface AccessIdentity {
  readonly userId: string
  readonly claims: Claims
  readonly kid: string
}

/** The settings the auth service uses. Durations in seconds. */
export interface AuthSettings {
  readonly registration: 'open' | 'closed'
  readonly accessTokenTtl: number
  readonly refreshOverlap: number
  readonly issuer: string | undefined
  readonly audience: string | undefined
}

/** What {@link AuthService} is built from. */
export interface AuthDeps {
  readonly store: Store
  readonly keys: KeyService
  readonly revocations: RevocationCache
  readonly passwords: PasswordHasher
  readonly metrics: ServiceMetrics
  readonly clock: Clock
  readonly masterKey: Buffer
  /** REKEY_MASTER_KEY_PREV during a master-key rotation: successors sealed under it still open. */
  readonly previousMasterKey?: Buffer
  readonly computeHash: ComputeAuditHash
  readonly settings: AuthSettings
  readonly log: { warn(obj: object, msg: string): void }
  /** Per-kid verification counters flushed to the store (status shares, emergency reports). */
  readonly usage?: { record(kid: string, result: string): void }
  /** Login backoff per (account, client address), shared by login and the dashboard sign-in. */
  readonly throttle: LoginThrottle
}

/** How long the token of a forced password change lives, seconds: long enough to type a new password. */
export const PASSWORD_CHANGE_TTL = 600

/** Who is changing a password: the session of an access token, or a forced change after login. */
interface PasswordChanger {
  readonly userId: string
  /** The session that asked (kept alive); `null` for a forced change, which ends every session. */
  readonly sid: string | null
}

/** The store keeps only this digest of a refresh token. */
export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex')
}

function revoked(message: string): RekeyError {
  return new RekeyError('ERR_TOKEN_REVOKED', message)
}

export class AuthService {
  readonly #deps: AuthDeps
  readonly #verifyAccess: (token: string) => VerifyResult
  readonly #verifyRefresh: (token: string) => VerifyResult
  /** The master key (then the previous one) as KeyObjects: every refresh seals its successor pair. */
  readonly #successorKeys: readonly MasterKey[]

  constructor(deps: AuthDeps) {
    this.#deps = deps
    this.#successorKeys = [deps.masterKey, ...(deps.previousMasterKey === undefined ? [] : [deps.previousMasterKey])].map(masterKeyObject)
    const { issuer, audience } = deps.settings
    const opts = { ...(issuer === undefined ? {} : { issuer }), ...(audience === undefined ? {} : { audience }), requiredClaims: ['sub', 'jti', 'iat', 'exp'] }
    // Keyrings are updated in place on rotation, so verifiers made once stay current (keys must be loaded).
    // Clients present one access token many times (/me on every page): a token verified once
    // skips the signature check until the key set changes; claims and the session check still run every time.
    this.#verifyAccess = deps.keys.access.cachingVerifier(opts)
    this.#verifyRefresh = deps.keys.refresh.verifier({ requiredClaims: ['sub', 'jti', 'iat', 'exp'] })
  }

  async register(email: string, password: string): Promise<{ id: string, email: string }> {
    if (this.#deps.settings.registration === 'closed') throw new ServiceError('registration_closed')
    const normalized = normalizeEmail(email)
    if (normalized === null) throw new ServiceError('validation_failed', 'email must be a valid email address')
    const passwordHash = await this.#deps.passwords.hash(password)
    try {
      const user = await this.#deps.store.createUser({ id: randomUUID(), email: normalized, passwordHash, createdAt: this.#deps.clock.now() })
      return { id: user.id, email: user.email }
    } catch (err) {
      if (hasCode(err, 'ERR_CONFLICT')) throw new ServiceError('email_taken')
      throw err
    }
  }

  /**
   * The credential check of login and the dashboard sign-in, behind the backoff of its
   * (account, client address): 429 `rate_limited` with `retryAfter` while that pair must wait,
   * 401 `invalid_credentials` for an unknown email or a wrong password (which counts a failure).
   */
  async checkCredentials(email: string, password: string, address: string, requestId: string | null = null): Promise<UserRecord> {
    const { throttle, clock, metrics } = this.#deps
    const key = LoginThrottle.key(normalizeEmail(email) ?? canonicalEmail(email.trim()), address)
    const blockedUntil = await throttle.blockedUntil(key, clock.now())
    if (blockedUntil > 0) {
      metrics.logins.inc({ result: 'throttled' })
      // No password check while waiting: a throttled client spends none of our argon2 time.
      throw this.#throttled(blockedUntil)
    }
    const user = await checkCredentials(this.#deps, email, password)
    if (user === null) {
      metrics.logins.inc({ result: 'invalid_credentials' })
      const now = clock.now()
      const failed = await throttle.fail(key, now)
      if (failed.firstWait) void this.#recordLock(key, failed.blockedUntil, requestId)
      throw new ServiceError('invalid_credentials')
    }
    await throttle.succeed(key)
    return user
  }

  #throttled(until: number): ServiceError {
    const seconds = Math.max(1, Math.ceil((until - this.#deps.clock.now()) / 1000))
    return new ServiceError('rate_limited', `Too many failed logins from this address for this account; retry in ${seconds} s`, { retryAfter: seconds })
  }

  async login(email: string, password: string, address = 'unknown', requestId: string | null = null): Promise<TokenPair> {
    const { metrics, revocations } = this.#deps
    const generation = revocations.generation
    const user = await this.checkCredentials(email, password, address, requestId)
    if (user.mustChangePassword) throw this.#passwordChangeRequired(user)
    const cached: CachedUser = Object.freeze({ id: user.id, email: user.email, role: user.role, tokenVersion: user.tokenVersion })
    // Cached now, so this user's tokens keep verifying here while the store is down.
    revocations.remember(cached, generation)
    const pair = await this.#newSession(cached)
    metrics.logins.inc({ result: 'ok' })
    metrics.sessionsCreated.inc()
    return pair
  }

  /** 403 with a short-lived token that can only set a new password (`POST /api/auth/password`). */
  #passwordChangeRequired(user: UserRecord): ServiceError {
    this.#deps.metrics.logins.inc({ result: 'password_change_required' })
    const iat = this.#issuedAt(this.#deps.clock.now())
    // Signed with the refresh keyring: its keys never leave rekey, so no other service can take it for an access token.
    const token = this.#deps.keys.refresh.sign(
      { sub: user.id, ver: user.tokenVersion, token_use: 'password_change', iat, exp: iat + PASSWORD_CHANGE_TTL },
      { jwtId: randomUUID() },
    )
    return new ServiceError('password_change_required', undefined, { details: { passwordChangeToken: token, expiresIn: PASSWORD_CHANGE_TTL } })
  }

  async #newSession(user: CachedUser): Promise<TokenPair> {
    const now = this.#deps.clock.now()
    const familyExp = Math.floor(now / 1000) + this.#deps.keys.refresh.expiresIn
    const sid = randomUUID()
    const refreshToken = this.#signRefresh(user.id, sid, now, familyExp)
    await this.#deps.store.createFamily({
      familyId: sid,
      userId: user.id,
      createdAt: now,
      expiresAt: familyExp * 1000,
      token: { tokenHash: hashToken(refreshToken), kid: this.#deps.keys.refresh.currentKid, issuedAt: now, expiresAt: familyExp * 1000 },
    })
    return this.#pair(this.#signAccess(user, sid, now), refreshToken)
  }

  #pair(accessToken: string, refreshToken: string): TokenPair {
    return { accessToken, refreshToken, tokenType: 'Bearer', expiresIn: this.#deps.settings.accessTokenTtl }
  }

  /**
   * A token's `iat`: now in seconds, but never before the global not-before. An emergency's
   * not-before is the second after it (a token of the emergency's own second is refused, `iat`
   * having no finer grain), so a token issued later in that second says the next one.
   */
  #issuedAt(now: number): number {
    return Math.max(Math.floor(now / 1000), this.#deps.revocations.notBefore)
  }

  #signAccess(user: CachedUser, sid: string, now: number): string {
    const iat = this.#issuedAt(now)
    const { issuer, audience } = this.#deps.settings
    return this.#deps.keys.access.sign(
      { sub: user.id, sid, ver: user.tokenVersion, token_use: 'access', iat, exp: iat + this.#deps.settings.accessTokenTtl },
      { jwtId: randomUUID(), ...(issuer === undefined ? {} : { issuer }), ...(audience === undefined ? {} : { audience }) },
    )
  }

  /**
   * Refresh tokens expire with their session: every successor keeps the family's `exp` and `sid`,
   * so a used token whose row was pruned is still seen as a reuse.
   */
  #signRefresh(userId: string, sid: string, now: number, exp: number): string {
    return this.#deps.keys.refresh.sign({ sub: userId, sid, token_use: 'refresh', iat: this.#issuedAt(now), exp }, { jwtId: randomUUID() })
  }

  #checkRefresh(token: string, use: 'refresh' | 'password_change' = 'refresh'): Claims {
    const started = performance.now()
    let result = 'ok'
    let kid: string | undefined
    try {
      const verified = this.#verifyRefresh(token)
      kid = verified.kid
      const claims = verified.payload
      // Separate keyrings already keep access and refresh apart; the claim keeps refresh and password-change apart.
      if (claims.token_use !== use) throw new RekeyError('ERR_TOKEN_CLAIM', use === 'refresh' ? 'Not a refresh token' : 'Not a password-change token', { claim: 'token_use' })
      if (typeof claims.iat === 'number' && claims.iat < this.#deps.revocations.notBefore) throw revoked('The token was issued before the global not-before')
      return claims
    } catch (err) {
      result = isRekeyError(err) ? err.code : 'error'
      if (isRekeyError(err)) kid = err.kid
      throw err
    } finally {
      this.#record('refresh', kid ?? 'unknown', result, started)
    }
  }

  async refresh(refreshToken: string): Promise<TokenPair> {
    const { store, metrics, clock } = this.#deps
    let claims: Claims
    try {
      claims = this.#checkRefresh(refreshToken)
    } catch (err) {
      metrics.refreshes.inc({ result: isRekeyError(err) ? err.code : 'error' })
      throw err
    }
    const userId = claims.sub as string
    const user = await this.#deps.revocations.getUser(userId)
    if (user === null) {
      metrics.refreshes.inc({ result: 'ERR_TOKEN_REVOKED' })
      throw revoked('The session has ended')
    }
    const now = clock.now()
    const oldHash = hashToken(refreshToken)
    // Refresh tokens name their session; one issued before sessions were named is looked up once.
    const sid = typeof claims.sid === 'string' ? claims.sid : (await store.getFamilyByTokenHash(oldHash))?.id
    if (sid === undefined) {
      metrics.refreshes.inc({ result: 'unknown' })
      throw revoked('The session has ended')
    }
    const next = this.#signRefresh(userId, sid, now, claims.exp as number)
    const pair = this.#pair(this.#signAccess(user, sid, now), next)
    const aad = `rekey/successor/${oldHash}`
    const outcome = await store.rotateToken({
      oldHash,
      next: { tokenHash: hashToken(next), kid: this.#deps.keys.refresh.currentKid, issuedAt: now, expiresAt: (claims.exp as number) * 1000 },
      successorBlob: seal(this.#successorKeys[0] as MasterKey, JSON.stringify({ a: pair.accessToken, r: pair.refreshToken }), aad),
      now,
      familyId: sid,
      overlapMs: this.#deps.settings.refreshOverlap * 1000,
      reuseAudit: (session) => auditWrite(this.#deps.computeHash, {
        at: now,
        secret: 'jwt-refresh',
        operator: 'rekey-serve',
        method: 'reuse-detected',
        notes: `refresh token reused after the overlap window; session ${session.familyId} of user ${session.userId} ended`,
        requestId: null,
      }),
    })
    switch (outcome.outcome) {
      case 'rotated':
        metrics.refreshes.inc({ result: 'ok' })
        return pair
      case 'overlap': {
        if (outcome.successorBlob === null) break
        const stored = JSON.parse(openWithAny(this.#successorKeys, outcome.successorBlob, aad).toString('utf8')) as { a: string, r: string }
        metrics.refreshes.inc({ result: 'overlap' })
        return this.#pair(stored.a, stored.r)
      }
      case 'reuse':
        // Refused here at once; other instances when the store's signal arrives.
        this.#deps.revocations.sessionEnded(outcome.familyId)
        metrics.refreshes.inc({ result: 'reuse' })
        metrics.reuseDetected.inc()
        this.#deps.log.warn({ familyId: outcome.familyId, userId: outcome.userId }, 'refresh token reuse detected: session ended')
        throw revoked('The refresh token was already used; the session has ended')
      case 'invalid':
        metrics.refreshes.inc({ result: outcome.reason })
        if (outcome.reason === 'expired') throw new RekeyError('ERR_TOKEN_EXPIRED', 'The session has expired')
        break
    }
    throw revoked('The session has ended')
  }

  /** Ends the session of a refresh token, its access tokens included. An expired token still ends its session. */
  async logout(refreshToken: string): Promise<void> {
    try {
      this.#checkRefresh(refreshToken)
    } catch (err) {
      if (!(isRekeyError(err) && (err.code === 'ERR_TOKEN_EXPIRED' || err.code === 'ERR_TOKEN_REVOKED'))) throw err
    }
    const ended = await this.#deps.store.revokeFamilyByTokenHash(hashToken(refreshToken), 'logout', this.#deps.clock.now())
    if (ended !== null) this.#deps.revocations.sessionEnded(ended.familyId)
  }

  /** Ends every session of the user and refuses every access token they hold, on every instance. */
  async logoutAll(userId: string): Promise<void> {
    const now = this.#deps.clock.now()
    await this.#deps.store.transaction(async (tx) => {
      await tx.bumpTokenVersion(userId)
      await tx.revokeAllForUser(userId, 'logout-all', now)
    })
    this.#deps.revocations.evictUser(userId)
  }

  /** A session without refresh token, for the dashboard's cookie: its id, ended by {@link endSession}. */
  async startSession(userId: string, ttlSeconds: number): Promise<string> {
    const now = this.#deps.clock.now()
    const sid = randomUUID()
    await this.#deps.store.createFamily({ familyId: sid, userId, createdAt: now, expiresAt: now + ttlSeconds * 1000 })
    return sid
  }

  /** Ends one session (dashboard sign-out): its credentials are refused here at once, elsewhere within a signal. */
  async endSession(sid: string, reason: string): Promise<void> {
    await this.#deps.store.revokeFamily(sid, reason, this.#deps.clock.now())
    this.#deps.revocations.sessionEnded(sid)
  }

  /**
   * Changes a password. `token` is the Bearer of the request: an access token (its session
   * stays, the user's other sessions end) or the `passwordChangeToken` of a forced change
   * (every session ends). The current password is checked either way; a wrong one counts
   * toward the login backoff of (account, address).
   */
  async changePassword(token: string, currentPassword: string, newPassword: string, address: string, requestId: string | null = null): Promise<void> {
    const changer = await this.#changer(token)
    if (newPassword === currentPassword) throw new ServiceError('validation_failed', 'newPassword must differ from currentPassword')
    const row = await this.#deps.store.getUserById(changer.userId)
    if (row === null) throw revoked('The user no longer exists')
    await this.checkCredentials(row.email, currentPassword, address, requestId)
    const passwordHash = await this.#deps.passwords.hash(newPassword)
    const now = this.#deps.clock.now()
    const audit = auditWrite(this.#deps.computeHash, {
      at: now, secret: 'user-password', operator: row.email, method: changer.sid === null ? 'password-reset' : 'password-change',
      notes: `password of user ${row.id} changed; ${changer.sid === null ? 'every session' : 'every other session'} ended`, requestId,
    })
    await this.#deps.store.transaction(async (tx) => {
      await tx.setPassword(row.id, passwordHash, { audit })
      if (changer.sid === null) {
        // The version moves on, so the password-change token cannot be used a second time.
        await tx.bumpTokenVersion(row.id)
        await tx.revokeAllForUser(row.id, 'password-reset', now)
      } else {
        await tx.revokeOtherSessions(row.id, changer.sid, 'password-change', now)
      }
    })
    // The ended sessions' access tokens are refused here before this answer, elsewhere within a signal.
    this.#deps.revocations.invalidateUsers()
    await this.#deps.revocations.refreshEndedSessions()
  }

  async #changer(token: string): Promise<PasswordChanger> {
    try {
      const { identity } = await this.authenticate(token)
      return { userId: identity.userId, sid: typeof identity.claims.sid === 'string' ? identity.claims.sid : null }
    } catch (accessErr) {
      if (!isRekeyError(accessErr)) throw accessErr
      let claims: Claims
      try {
        claims = this.#checkRefresh(token, 'password_change')
      } catch {
        throw accessErr
      }
      const user = await checkSession(this.#deps.revocations, {
        userId: claims.sub as string, iat: claims.iat as number, ver: typeof claims.ver === 'number' ? claims.ver : -1, sid: undefined,
      })
      return { userId: user.id, sid: null }
    }
  }

  /**
   * Verifies an access token: signature, claims, then the session check (global not-before,
   * session not ended, user and token version). Reads the store only when the user is not cached.
   */
  async authenticate(token: string): Promise<{ identity: AccessIdentity, user: CachedUser }> {
    const started = performance.now()
    let result = 'ok'
    let kid: string | undefined
    try {
      let verified: VerifyResult
      try {
        verified = this.#verifyAccess(token)
      } finally {
        this.#deps.metrics.observeVerify('access', (performance.now() - started) / 1000)
      }
      kid = verified.kid
      const claims = verified.payload
      if (claims.token_use !== 'access') throw new RekeyError('ERR_TOKEN_CLAIM', 'Not an access token', { claim: 'token_use' })
      if (typeof claims.ver !== 'number') throw new RekeyError('ERR_TOKEN_CLAIM', 'The "ver" claim is required', { claim: 'ver' })
      if (claims.sid !== undefined && typeof claims.sid !== 'string') throw new RekeyError('ERR_TOKEN_CLAIM', 'The "sid" claim must be a string', { claim: 'sid' })
      const userId = claims.sub as string
      const user = await checkSession(this.#deps.revocations, { userId, iat: claims.iat as number, ver: claims.ver, sid: claims.sid })
      return { identity: { userId, claims, kid }, user }
    } catch (err) {
      result = isRekeyError(err) ? err.code : 'error'
      if (kid === undefined && isRekeyError(err)) kid = err.kid
      throw err
    } finally {
      // Only kids of the keyring reach a label (the error names none for a forged header).
      const label = kid ?? 'unknown'
      this.#deps.metrics.countVerification('access', label, result)
      this.#deps.usage?.record(label, result)
    }
  }

  /**
   * Records that the backoff of one (account, address) started its first wait: one audit row
   * per lock (with Redis, across instances: only the instance that counted that failure writes
   * it). Best effort: a failure to write is logged and the wait holds anyway.
   */
  async #recordLock(key: string, until: number, requestId: string | null): Promise<void> {
    const now = this.#deps.clock.now()
    const bar = key.lastIndexOf('|')
    const account = key.slice(0, bar)
    const address = key.slice(bar + 1)
    try {
      await this.#deps.store.appendAudit({
        at: now,
        secret: 'login',
        operator: 'rekey-serve',
        method: 'login-lock',
        notes: `too many failed logins for ${account} from ${address}: that address waits until ${new Date(until).toISOString()}, others are not affected`,
        requestId,
      }, this.#deps.computeHash)
    } catch (err) {
      this.#deps.log.warn({ err: { message: (err as Error)?.message } }, 'could not write the login-lock audit row')
    }
  }

  #record(purpose: 'access' | 'refresh', kid: string, result: string, started: number): void {
    this.#deps.metrics.countVerification(purpose, kid, result)
    this.#deps.usage?.record(kid, result)
    this.#deps.metrics.observeVerify(purpose, (performance.now() - started) / 1000)
  }
}
