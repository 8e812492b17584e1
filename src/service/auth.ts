/**
 * The auth operations behind the HTTP routes: register, login, refresh with rotation and reuse
 * detection, logout, logout-all, and access-token authentication from memory.
 */
import { createHash, randomUUID } from 'node:crypto'
import { RekeyError, isRekeyError } from '../core/errors.ts'
import type { Claims } from '../core/claims.ts'
import type { VerifyResult } from '../core/keyring.ts'
import { openWithAny, seal } from '../core/seal.ts'
import { hasCode } from '../store/errors.ts'
import type { Store } from '../store/store.ts'
import type { ComputeAuditHash } from '../store/types.ts'
import { auditWrite } from './audit.ts'
import type { Clock } from './clock.ts'
import { ServiceError } from './errors.ts'
import type { KeyService } from './keys.ts'
import { headerKid, type ServiceMetrics } from './metrics.ts'
import type { PasswordHasher } from './passwords.ts'
import type { CachedUser, RevocationCache } from './revocations.ts'

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
}

/** Emails: trimmed, lowercased, one @, no spaces, at most 254 characters. */
export function normalizeEmail(email: string): string | null {
  const value = email.trim().toLowerCase()
  if (value.length > 254 || !/^[^\s@]{1,64}@[^\s@]+\.[^\s@]+$/.test(value)) return null
  return value
}

/** The store keeps only this digest of a refresh token. */
export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex')
}

function revoked(message: string): RekeyError {
  return new RekeyError('ERR_TOKEN_REVOKED', message)
}

/** Accounts locked out by the login limiter, remembered so one lock writes one audit row. */
const MAX_LOCKS_REMEMBERED = 10_000

export class AuthService {
  readonly #d: AuthDeps
  readonly #locks = new Map<string, number>()
  readonly #verifyAccess: (token: string) => VerifyResult
  readonly #verifyRefresh: (token: string) => VerifyResult

  constructor(deps: AuthDeps) {
    this.#d = deps
    const { issuer, audience } = deps.settings
    const opts = { ...(issuer === undefined ? {} : { issuer }), ...(audience === undefined ? {} : { audience }), requiredClaims: ['sub', 'jti', 'iat', 'exp'] }
    // Keyrings are updated in place on rotation, so verifiers made once stay current (keys must be loaded).
    this.#verifyAccess = deps.keys.access.verifier(opts)
    this.#verifyRefresh = deps.keys.refresh.verifier({ requiredClaims: ['sub', 'jti', 'iat', 'exp'] })
  }

  async register(email: string, password: string): Promise<{ id: string, email: string }> {
    if (this.#d.settings.registration === 'closed') throw new ServiceError('registration_closed')
    const normalized = normalizeEmail(email)
    if (normalized === null) throw new ServiceError('validation_failed', 'email must be a valid email address')
    const passwordHash = await this.#d.passwords.hash(password)
    try {
      const user = await this.#d.store.createUser({ id: randomUUID(), email: normalized, passwordHash, createdAt: this.#d.clock.now() })
      return { id: user.id, email: user.email }
    } catch (err) {
      if (hasCode(err, 'ERR_CONFLICT')) throw new ServiceError('email_taken')
      throw err
    }
  }

  async login(email: string, password: string): Promise<TokenPair> {
    const { store, passwords, metrics } = this.#d
    const normalized = normalizeEmail(email)
    const user = normalized === null ? null : await store.getUserByEmail(normalized)
    // Unknown user: spend one verification anyway, so timing does not tell the two cases apart.
    const ok = user === null ? await passwords.verifyDummy(password) : await passwords.verify(user.passwordHash, password)
    if (user === null || !ok) {
      metrics.logins.inc({ result: 'invalid_credentials' })
      throw new ServiceError('invalid_credentials')
    }
    const cached: CachedUser = { id: user.id, email: user.email, role: user.role, tokenVersion: user.tokenVersion }
    const pair = await this.#newSession(cached)
    metrics.logins.inc({ result: 'ok' })
    metrics.sessionsCreated.inc()
    return pair
  }

  async #newSession(user: CachedUser): Promise<TokenPair> {
    const now = this.#d.clock.now()
    const familyExp = Math.floor(now / 1000) + this.#d.keys.refresh.expiresIn
    const familyId = randomUUID()
    const refreshToken = this.#signRefresh(user.id, now, familyExp, familyId)
    await this.#d.store.createFamily({
      familyId,
      userId: user.id,
      createdAt: now,
      expiresAt: familyExp * 1000,
      token: { tokenHash: hashToken(refreshToken), kid: this.#d.keys.refresh.currentKid, issuedAt: now, expiresAt: familyExp * 1000 },
    })
    return this.#pair(this.#signAccess(user, now), refreshToken)
  }

  #pair(accessToken: string, refreshToken: string): TokenPair {
    return { accessToken, refreshToken, tokenType: 'Bearer', expiresIn: this.#d.settings.accessTokenTtl }
  }

  #signAccess(user: CachedUser, now: number): string {
    const iat = Math.floor(now / 1000)
    const { issuer, audience } = this.#d.settings
    return this.#d.keys.access.sign(
      { sub: user.id, ver: user.tokenVersion, token_use: 'access', iat, exp: iat + this.#d.settings.accessTokenTtl },
      { jwtId: randomUUID(), ...(issuer === undefined ? {} : { issuer }), ...(audience === undefined ? {} : { audience }) },
    )
  }

  /**
   * Refresh tokens expire with their session: every successor keeps the family's `exp`. They
   * name their family (`sid`), so a used token whose row was pruned is still seen as a reuse.
   */
  #signRefresh(userId: string, now: number, exp: number, sid: string | undefined): string {
    return this.#d.keys.refresh.sign({ sub: userId, token_use: 'refresh', iat: Math.floor(now / 1000), exp, ...(sid === undefined ? {} : { sid }) }, { jwtId: randomUUID() })
  }

  #checkRefresh(token: string): Claims {
    const started = performance.now()
    let result = 'ok'
    let kid: string | undefined
    try {
      const verified = this.#verifyRefresh(token)
      kid = verified.kid
      const claims = verified.payload
      // Separate keyrings already keep the two kinds apart; the claim guards a shared secret.
      if (claims.token_use !== 'refresh') throw new RekeyError('ERR_TOKEN_CLAIM', 'Not a refresh token', { claim: 'token_use' })
      if (typeof claims.iat === 'number' && claims.iat < this.#d.revocations.notBefore) throw revoked('The token was issued before the global not-before')
      return claims
    } catch (err) {
      result = isRekeyError(err) ? err.code : 'error'
      throw err
    } finally {
      this.#record('refresh', kid ?? this.#knownKid(token, 'refresh'), result, started)
    }
  }

  async refresh(refreshToken: string): Promise<TokenPair> {
    const { store, metrics, clock, masterKey } = this.#d
    let claims: Claims
    try {
      claims = this.#checkRefresh(refreshToken)
    } catch (err) {
      metrics.refreshes.inc({ result: isRekeyError(err) ? err.code : 'error' })
      throw err
    }
    const userId = claims.sub as string
    const user = await this.#d.revocations.getUser(userId)
    if (user === null) {
      metrics.refreshes.inc({ result: 'ERR_TOKEN_REVOKED' })
      throw revoked('The session has ended')
    }
    const now = clock.now()
    const oldHash = hashToken(refreshToken)
    const sid = typeof claims.sid === 'string' ? claims.sid : undefined
    const next = this.#signRefresh(userId, now, claims.exp as number, sid)
    const pair = this.#pair(this.#signAccess(user, now), next)
    const aad = `rekey/successor/${oldHash}`
    const outcome = await store.rotateToken({
      oldHash,
      next: { tokenHash: hashToken(next), kid: this.#d.keys.refresh.currentKid, issuedAt: now, expiresAt: (claims.exp as number) * 1000 },
      successorBlob: seal(masterKey, JSON.stringify({ a: pair.accessToken, r: pair.refreshToken }), aad),
      now,
      ...(sid === undefined ? {} : { familyId: sid }),
      overlapMs: this.#d.settings.refreshOverlap * 1000,
      reuseAudit: (session) => auditWrite(this.#d.computeHash, {
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
        const keys = this.#d.previousMasterKey === undefined ? [masterKey] : [masterKey, this.#d.previousMasterKey]
        const stored = JSON.parse(openWithAny(keys, outcome.successorBlob, aad).toString('utf8')) as { a: string, r: string }
        metrics.refreshes.inc({ result: 'overlap' })
        return this.#pair(stored.a, stored.r)
      }
      case 'reuse':
        metrics.refreshes.inc({ result: 'reuse' })
        metrics.reuseDetected.inc()
        this.#d.log.warn({ familyId: outcome.familyId, userId: outcome.userId }, 'refresh token reuse detected: session ended')
        throw revoked('The refresh token was already used; the session has ended')
      case 'invalid':
        metrics.refreshes.inc({ result: outcome.reason })
        if (outcome.reason === 'expired') throw new RekeyError('ERR_TOKEN_EXPIRED', 'The session has expired')
        break
    }
    throw revoked('The session has ended')
  }

  /** Ends the session of a refresh token. An expired token still ends its session. */
  async logout(refreshToken: string): Promise<void> {
    try {
      this.#checkRefresh(refreshToken)
    } catch (err) {
      if (!(isRekeyError(err) && (err.code === 'ERR_TOKEN_EXPIRED' || err.code === 'ERR_TOKEN_REVOKED'))) throw err
    }
    await this.#d.store.revokeFamilyByTokenHash(hashToken(refreshToken), 'logout', this.#d.clock.now())
  }

  /** Ends every session of the user and refuses every access token they hold, on every instance. */
  async logoutAll(userId: string): Promise<void> {
    const now = this.#d.clock.now()
    await this.#d.store.transaction(async (tx) => {
      await tx.bumpTokenVersion(userId)
      await tx.revokeAllForUser(userId, 'logout-all', now)
    })
    this.#d.revocations.evictUser(userId)
  }

  /**
   * Verifies an access token: signature, claims, the global not-before and the user's token
   * version. Reads the store only when the user is not cached.
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
        this.#d.metrics.observeVerify('access', (performance.now() - started) / 1000)
      }
      kid = verified.kid
      const claims = verified.payload
      if (claims.token_use !== 'access') throw new RekeyError('ERR_TOKEN_CLAIM', 'Not an access token', { claim: 'token_use' })
      if (typeof claims.ver !== 'number') throw new RekeyError('ERR_TOKEN_CLAIM', 'The "ver" claim is required', { claim: 'ver' })
      if ((claims.iat as number) < this.#d.revocations.notBefore) throw revoked('The token was issued before the global not-before')
      const userId = claims.sub as string
      const user = this.#d.revocations.peek(userId) ?? await this.#d.revocations.getUser(userId)
      if (user === null) throw revoked('The user no longer exists')
      if (claims.ver < user.tokenVersion) throw revoked('The token was revoked')
      return { identity: { userId, claims, kid }, user }
    } catch (err) {
      result = isRekeyError(err) ? err.code : 'error'
      throw err
    } finally {
      const label = kid ?? this.#knownKid(token, 'access')
      this.#d.metrics.countVerification('access', label, result)
      this.#d.usage?.record(label, result)
    }
  }

  /**
   * Records that the per-account login limit locked `account` for up to `lockMs`: one
   * audit row per lock and instance, however many attempts hit it. Best effort: a failure to
   * write is logged and the lock holds anyway.
   */
  async recordLoginLock(account: string, lockMs: number, requestId: string | null): Promise<void> {
    const now = this.#d.clock.now()
    const until = now + lockMs
    const lockedUntil = this.#locks.get(account)
    if (lockedUntil !== undefined && lockedUntil > now) return
    if (this.#locks.size >= MAX_LOCKS_REMEMBERED) {
      for (const [key, end] of this.#locks) if (end <= now) this.#locks.delete(key)
      if (this.#locks.size >= MAX_LOCKS_REMEMBERED) return
    }
    this.#locks.set(account, until)
    try {
      await this.#d.store.appendAudit({
        at: now,
        secret: 'login',
        operator: 'rekey-serve',
        method: 'login-lock',
        notes: `too many login attempts for ${account}: locked until ${new Date(until).toISOString()}`,
        requestId,
      }, this.#d.computeHash)
    } catch (err) {
      this.#d.log.warn({ err: { message: (err as Error)?.message } }, 'could not write the login-lock audit row')
    }
  }

  /** A kid for the metrics label: only kids of the keyring, so a forged header cannot add series. */
  #knownKid(token: string, purpose: 'access' | 'refresh'): string {
    const kid = headerKid(token)
    const ring = purpose === 'access' ? this.#d.keys.access : this.#d.keys.refresh
    return ring.list().some((k) => k.kid === kid) ? kid : 'unknown'
  }

  #record(purpose: 'access' | 'refresh', kid: string, result: string, started: number): void {
    this.#d.metrics.countVerification(purpose, kid, result)
    this.#d.usage?.record(kid, result)
    this.#d.metrics.observeVerify(purpose, (performance.now() - started) / 1000)
  }
}
