/**
 * Login backoff per (account, client address): a client that keeps failing for one account
 * waits longer and longer (exponential), while the same account from an address without
 * failures is not slowed at all, so strangers cannot lock a user out. Counted in memory, or in
 * Redis (REKEY_REDIS_URL) so every instance shares one count; a Redis failure fails open.
 */
import { createHash } from 'node:crypto'
import type { Redis } from 'ioredis'

/** The backoff rules. Times in ms. */
export interface BackoffPolicy {
  /** Failures after which the pair waits: the N-th failure starts the first wait. */
  readonly freeFailures: number
  /** The first wait; each further failure doubles it. */
  readonly baseMs: number
  /** The longest wait. */
  readonly maxMs: number
  /** Failures are forgotten this long after the last one (or after the wait, if longer). */
  readonly windowMs: number
}

/** Where failure counts live. */
export interface BackoffStore {
  /** Epoch ms until which `key` must wait; 0 when it may try now. */
  blockedUntil(key: string, now: number): Promise<number>
  /** Counts a failure; the failures so far and the wait it starts (0: none). */
  fail(key: string, now: number, policy: BackoffPolicy): Promise<{ failures: number, blockedUntil: number }>
  /** Forgets `key` (a successful login). */
  clear(key: string): Promise<void>
}

function waitAfter(failures: number, now: number, policy: BackoffPolicy): number {
  if (failures < policy.freeFailures) return 0
  const exponent = Math.min(failures - policy.freeFailures, 40)
  return now + Math.min(policy.baseMs * 2 ** exponent, policy.maxMs)
}

const MAX_ENTRIES = 100_000

/** Counts in this process only: each instance has its own budget. */
export class MemoryBackoffStore implements BackoffStore {
  readonly #entries = new Map<string, { failures: number, blockedUntil: number, expiresAt: number }>()

  async blockedUntil(key: string, now: number): Promise<number> {
    const entry = this.#entries.get(key)
    if (entry === undefined) return 0
    if (entry.expiresAt <= now) {
      this.#entries.delete(key)
      return 0
    }
    return entry.blockedUntil > now ? entry.blockedUntil : 0
  }

  async fail(key: string, now: number, policy: BackoffPolicy): Promise<{ failures: number, blockedUntil: number }> {
    let entry = this.#entries.get(key)
    if (entry !== undefined && entry.expiresAt <= now) entry = undefined
    const failures = (entry?.failures ?? 0) + 1
    const blockedUntil = waitAfter(failures, now, policy)
    this.#entries.delete(key) // re-inserted last: the map stays in last-failure order
    if (this.#entries.size >= MAX_ENTRIES) this.#evict(now)
    this.#entries.set(key, { failures, blockedUntil, expiresAt: Math.max(now, blockedUntil) + policy.windowMs })
    return { failures, blockedUntil }
  }

  async clear(key: string): Promise<void> {
    this.#entries.delete(key)
  }

  #evict(now: number): void {
    for (const [key, entry] of this.#entries) if (entry.expiresAt <= now) this.#entries.delete(key)
    // Still full: forget the oldest tenth (bounded memory wins over perfect recall under a flood).
    if (this.#entries.size >= MAX_ENTRIES) {
      let drop = Math.ceil(MAX_ENTRIES / 10)
      for (const key of this.#entries.keys()) {
        if (drop-- <= 0) break
        this.#entries.delete(key)
      }
    }
  }
}

// One round trip, atomic across instances: count, compute the wait, set the expiry.
const FAIL_SCRIPT = `
local failures = redis.call('HINCRBY', KEYS[1], 'f', 1)
local now = tonumber(ARGV[1])
local free = tonumber(ARGV[2])
local base = tonumber(ARGV[3])
local max = tonumber(ARGV[4])
local window = tonumber(ARGV[5])
local blocked = 0
if failures >= free then
  blocked = now + math.min(base * (2 ^ math.min(failures - free, 40)), max)
end
redis.call('HSET', KEYS[1], 'u', blocked)
redis.call('PEXPIRE', KEYS[1], math.max(0, blocked - now) + window)
return {failures, blocked}
`

/** Counts in Redis: every instance sees the same failures. Keys are digests: no email is readable in Redis. */
export class RedisBackoffStore implements BackoffStore {
  readonly #redis: Redis
  readonly #prefix: string

  constructor(redis: Redis, prefix: string) {
    this.#redis = redis
    this.#prefix = prefix
  }

  #key(key: string): string {
    return this.#prefix + createHash('sha256').update(key, 'utf8').digest('base64url')
  }

  async blockedUntil(key: string, now: number): Promise<number> {
    const until = Number(await this.#redis.hget(this.#key(key), 'u') ?? 0)
    return until > now ? until : 0
  }

  async fail(key: string, now: number, policy: BackoffPolicy): Promise<{ failures: number, blockedUntil: number }> {
    const [failures, blockedUntil] = await this.#redis.eval(FAIL_SCRIPT, 1, this.#key(key),
      now, policy.freeFailures, policy.baseMs, policy.maxMs, policy.windowMs) as [number, number]
    return { failures: Number(failures), blockedUntil: Number(blockedUntil) }
  }

  async clear(key: string): Promise<void> {
    await this.#redis.del(this.#key(key))
  }
}

/** The backoff as the auth service uses it: fail-open around the store. */
export class LoginThrottle {
  readonly #store: BackoffStore
  readonly #policy: BackoffPolicy
  readonly #onStoreError: (err: unknown) => void

  constructor(options: { store: BackoffStore, policy: BackoffPolicy, onStoreError: (err: unknown) => void }) {
    this.#store = options.store
    this.#policy = Object.freeze({ ...options.policy })
    this.#onStoreError = options.onStoreError
  }

  /** The key of one (account, address) pair. The account is the normalized email when it is one. */
  static key(account: string, address: string): string {
    return `${account.slice(0, 254)}|${address}`
  }

  /** Epoch ms until which the pair must wait, 0 when it may try. 0 also when the store fails (fail open). */
  async blockedUntil(key: string, now: number): Promise<number> {
    try {
      return await this.#store.blockedUntil(key, now)
    } catch (err) {
      this.#onStoreError(err)
      return 0
    }
  }

  /**
   * Counts a failure; the wait it starts (0: none, or the store failed), and whether it is the
   * pair's first wait (the one worth an audit row: later ones only double it).
   */
  async fail(key: string, now: number): Promise<{ failures: number, blockedUntil: number, firstWait: boolean }> {
    try {
      const done = await this.#store.fail(key, now, this.#policy)
      return { ...done, firstWait: done.blockedUntil > 0 && done.failures === Math.max(1, this.#policy.freeFailures) }
    } catch (err) {
      this.#onStoreError(err)
      return { failures: 0, blockedUntil: 0, firstWait: false }
    }
  }

  async succeed(key: string): Promise<void> {
    try {
      await this.#store.clear(key)
    } catch (err) {
      this.#onStoreError(err)
    }
  }
}
