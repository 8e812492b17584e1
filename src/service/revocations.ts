/**
 * Revocation state in memory: each user's token version (bumped by logout-all), email and
 * role, and the global not-before (set by an emergency). Every instance drops the user a
 * `revocations` or `users` notification names (everyone when it names none) and re-reads the
 * not-before on `settings`, so `/api/auth/me` answers from memory in the common case and a
 * revocation reaches every instance within a notification. The cache is an LRU.
 */
import type { Store } from '../store/store.ts'
import type { Role } from '../store/types.ts'

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

export class RevocationCache {
  readonly #store: Store
  /** Insertion order is recency order: a hit moves the user to the end, eviction takes the first. */
  readonly #users = new Map<string, CachedUser>()
  readonly #maxUsers: number
  #generation = 0
  #notBefore = 0
  #unsubscribe: (() => Promise<void>) | null = null

  /** `maxUsers`: how many users stay cached at most (LRU). Default {@link DEFAULT_MAX_CACHED_USERS}. */
  constructor(store: Store, opts: { maxUsers?: number } = {}) {
    this.#store = store
    this.#maxUsers = opts.maxUsers ?? DEFAULT_MAX_CACHED_USERS
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
    this.#unsubscribe = await this.#store.subscribe((channel, userId) => {
      if (channel === 'revocations' || channel === 'users') {
        // A change naming its user (PostgreSQL) evicts that user only; SQLite's polling cannot tell.
        if (userId === undefined) this.invalidateUsers()
        else this.evictUser(userId)
      } else if (channel === 'settings') void this.#loadSettings().catch(() => {})
    })
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
