/**
 * Where rate limits and login backoff are counted: in this process (each instance its own
 * budget), or in Redis (REKEY_REDIS_URL: one budget across instances). Redis that does not
 * answer fails open: the request goes through, a warning is logged (at most every 30 s) and
 * `rekey_limit_store_errors_total` counts it; never a 500.
 */
import type { Redis } from 'ioredis'

/** How limits are counted, for the app and the auth service. */
export interface SharedLimits {
  /** The Redis client, or `null`: limits are per instance. */
  readonly redis: Redis | null
  /** Prefix of every key rekey writes in Redis. */
  readonly prefix: string
  /** Report a failure of the limits store for `limit` (warning + metric); the caller fails open. */
  storeError(limit: string, err: unknown): void
  close(): Promise<void>
}

const WARN_EVERY_MS = 30_000

/** Opens the limits store. With a URL, waits up to `readyTimeoutMs` for Redis, then starts anyway (failing open). */
export async function openSharedLimits(options: {
  url: string | undefined
  prefix: string
  log: { warn(obj: object, msg: string): void }
  countError: (limit: string) => void
  readyTimeoutMs?: number
}): Promise<SharedLimits> {
  const { log, countError, prefix } = options
  let lastWarn = 0
  const storeError = (limit: string, err: unknown): void => {
    countError(limit)
    const now = Date.now()
    if (now - lastWarn < WARN_EVERY_MS) return
    lastWarn = now
    // The message only: an ioredis error can quote the URL, which may hold a password.
    const message = ((err as Error)?.message ?? String(err)).replace(/rediss?:\/\/\S*/gi, '[redis url]')
    log.warn({ err: { message }, limit }, 'the limits store (Redis) failed: limits fail open until it answers')
  }
  if (options.url === undefined) return { redis: null, prefix, storeError, close: async () => {} }
  // Loaded only when configured: a service without Redis does not pay for the client at start.
  const { Redis: RedisClient } = await import('ioredis')
  const redis = new RedisClient(options.url, {
    // Fail fast instead of queueing: a limit that waits for Redis would stall every login.
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    connectTimeout: 1000,
    commandTimeout: 500,
    retryStrategy: (attempt) => Math.min(attempt * 200, 2000),
    lazyConnect: true,
  })
  redis.on('error', (err: unknown) => storeError('connection', err))
  const ready = redis.connect().then(() => true, () => false)
  const timeout = new Promise<boolean>((resolve) => setTimeout(() => resolve(false), options.readyTimeoutMs ?? 2000).unref())
  if (!await Promise.race([ready, timeout])) {
    log.warn({}, 'REKEY_REDIS_URL does not answer: starting with limits failing open until it does')
  }
  return {
    redis, prefix, storeError,
    async close() {
      redis.disconnect()
    },
  }
}
