/**
 * Revocation state in memory: each user's token version (bumped by logout-all), email and
 * role, and the global not-before (set by an emergency). Every instance drops the user a
 * `revocations` or `users` notification names (everyone when it names none) and re-reads the
 * not-before on `settings`, so `/api/auth/me` answers from memory in the common case and a
 * revocation reaches every instance within a notification. The user cache is an LRU.
 *
 * It also keeps the ids of sessions (families) ended recently (logout, refresh-token reuse,
 * sign-out, password change): access tokens and dashboard cookies carry their session id
 * (`sid`), and a session ended on any instance is refused on every instance once the signal
 * arrives. Only the last access-token lifetime's worth is kept: older tokens have expired.
 */
import type { Store } from '../../store/store.ts'
import type { Role } from '../../store/types.ts'
import { systemClock, type Clock } from '../clock.ts'

/** The setting holding the global not-before, epoch seconds: access and refresh tokens issued before it are refused. */
export const NOT_BEFORE_SETTING = 'auth.not_before'

/** What the service keeps about a user between requests: never the password hash. */
export interface CachedUser {
  readonly id: string
  readonly email: string
  readonly role: Role
  readonly tokenVersion: number
}

/** Default bound of the user cache: the least recently used user goes first. */
export const DEFAULT_MAX_CACHED_USERS = 100_000
/** Ended sessions are re-read from a little before the last read: instances' clocks differ. */
const SKEW_MS = 30_000
/**
 * Revoke reasons whose access tokens another check already refuses (the global not-before, a
 * bumped token version): left out, so ending every session never loads every session id.
 */
const COVERED_REASONS: readonly string[] = Object.freeze(['emergency', 'logout-all', 'force-reset', 'password-reset'])

/** Options of {@link RevocationCache}. */
export interface RevocationCacheOptions {
  readonly clock?: Clock
  /** How long an ended session is remembered, ms: the access-token lifetime plus leeway. Default 16 minutes. */
  readonly retainMs?: number
  /** Told when re-reading the ended sessions fails (kept until the next signal). */
  readonly onError?: (err: unknown) => void
  /** How many users stay cached at most (LRU). Default {@link DEFAULT_MAX_CACHED_USERS}. */
  readonly maxUsers?: number
}

export class RevocationCache {
  readonly #store: Store
  /** Insertion order is recency order: a hit moves the user to the end, eviction takes the first. */
  readonly #users = new Map<string, CachedUser>()
  readonly #maxUsers: number
  readonly #endedSessions = new Map<string, number>()
  readonly #clock: Clock
  readonly #retainMs: number
  readonly #onError: (err: unknown) => void
  #endedReadAt = 0
  #endedReading: Promise<void> | null = null
  #endedAgain = false
  #generation = 0
  #notBefore = 0
  #unsubscribe: (() => Promise<void>) | null = null

  constructor(store: Store, options: RevocationCacheOptions = {}) {
    this.#store = store
    this.#clock = options.clock ?? systemClock
    this.#retainMs = options.retainMs ?? 16 * 60_000
    this.#onError = options.onError ?? (() => {})
    this.#maxUsers = options.maxUsers ?? DEFAULT_MAX_CACHED_USERS
  }

  /** Epoch seconds; tokens with an older `iat` are refused. 0 when unset. */
  get notBefore(): number {
    return this.#notBefore
  }

  /** How many users are cached now. */
  get size(): number {
    return this.#users.size
  }

  async start(): Promise<void> {
    await this.#loadSettings()
    await this.#readEnded()
    this.#unsubscribe = await this.#store.subscribe((channel, userId) => {
      if (channel === 'revocations' || channel === 'users') {
        // A change naming its user (PostgreSQL) evicts that user only; SQLite's polling cannot tell.
        if (userId === undefined) this.invalidateUsers()
        else this.evictUser(userId)
      }
      if (channel === 'revocations') void this.refreshEndedSessions()
      else if (channel === 'settings') void this.#loadSettings().catch(() => {})
    })
  }

  /** True when session `sid` was ended (on any instance, once its signal arrived). */
  isSessionEnded(sid: string): boolean {
    return this.#endedSessions.has(sid)
  }

  /** Records a session this instance just ended, before the store's signal comes back. */
  sessionEnded(sid: string): void {
    this.#endedSessions.set(sid, this.#clock.now())
  }

  /** Re-reads the sessions ended since the last read. Never rejects; a failure is reported and retried on the next signal. */
  refreshEndedSessions(): Promise<void> {
    if (this.#endedReading !== null) {
      // A signal during a read: read once more afterwards, so nothing committed meanwhile is missed.
      this.#endedAgain = true
      return this.#endedReading
    }
    this.#endedReading = (async () => {
      try {
        do {
          this.#endedAgain = false
          await this.#readEnded()
        } while (this.#endedAgain)
      } catch (err) {
        this.#onError(err)
      } finally {
        this.#endedReading = null
      }
    })()
    return this.#endedReading
  }

  async #readEnded(): Promise<void> {
    const now = this.#clock.now()
    const horizon = now - this.#retainMs
    const since = Math.max(horizon, this.#endedReadAt - SKEW_MS)
    const rows = await this.#store.listRevokedSessions(since, COVERED_REASONS)
    for (const row of rows) this.#endedSessions.set(row.id, row.revokedAt)
    this.#endedReadAt = now
    for (const [id, at] of this.#endedSessions) {
      if (at >= horizon) break // insertion order is roughly time order: stop at the first recent one
      this.#endedSessions.delete(id)
    }
  }

  async stop(): Promise<void> {
    const unsubscribe = this.#unsubscribe
    this.#unsubscribe = null
    if (unsubscribe !== null) await unsubscribe().catch(() => {})
  }

  /** Forgets every cached user; reads that started before this call will not be cached. */
  invalidateUsers(): void {
    this.#generation++
    this.#users.clear()
  }

  /** Forgets one user; reads that started before this call will not be cached. */
  evictUser(id: string): void {
    this.#generation++
    this.#users.delete(id)
  }

  /** The cached user, without touching the store. */
  peek(id: string): CachedUser | undefined {
    return this.#touch(id)
  }

  /** The cached user, now the most recently used. */
  #touch(id: string): CachedUser | undefined {
    const cached = this.#users.get(id)
    if (cached !== undefined) {
      this.#users.delete(id)
      this.#users.set(id, cached)
    }
    return cached
  }

  /** The user from memory, else from the store (then cached); `null` for an unknown id. */
  async getUser(id: string): Promise<CachedUser | null> {
    const cached = this.#touch(id)
    if (cached !== undefined) return cached
    const generation = this.#generation
    const row = await this.#store.getUserById(id)
    if (row === null) return null
    const user: CachedUser = Object.freeze({ id: row.id, email: row.email, role: row.role, tokenVersion: row.tokenVersion })
    this.remember(user, generation)
    return user
  }

  /** Caches a user read at `generation`, unless an invalidation happened since. */
  remember(user: CachedUser, generation = this.#generation): void {
    if (generation !== this.#generation) return
    this.#users.delete(user.id)
    this.#users.set(user.id, user)
    if (this.#users.size > this.#maxUsers) {
      const oldest = this.#users.keys().next()
      if (oldest.done !== true) this.#users.delete(oldest.value)
    }
  }

  /** The current generation, to pass to {@link remember} for a read that starts now. */
  get generation(): number {
    return this.#generation
  }

  async #loadSettings(): Promise<void> {
    const raw = await this.#store.getSetting(NOT_BEFORE_SETTING)
    const value = raw === null ? 0 : Number(raw)
    this.#notBefore = Number.isFinite(value) && value > 0 ? value : 0
  }
}
