/**
 * The running service: store, master key, keys, revocation cache, metrics, heartbeat and the
 * auth operations, started in order and stopped in reverse.
 */
import { randomUUID } from 'node:crypto'
import type { Logger } from 'pino'
import type { RekeyConfig } from '../config/load.ts'
import type { Env } from '../core/env.ts'
import { deriveKey } from '../core/derive-key.ts'
import type { OpenStoreOptions } from '../store/open.ts'
import type { Store } from '../store/store.ts'
import { AuthService } from './auth/auth.ts'
import { systemClock, type Clock } from './clock.ts'
import { Heartbeat } from './cluster/heartbeat.ts'
import { KeyService } from './keys/keys.ts'
import type { AuditLog } from './audit/audit-log.ts'
import type { KeyRotation } from './keys/rotation.ts'
import { announceJwksMaxAge, announceTokenLifetimes } from './keys/token-lifetimes.ts'
import { openOperations } from './operations.ts'
import { Scheduler } from './cluster/scheduler.ts'
import type { Webhooks } from './notify/webhooks.ts'
import { ServiceMetrics } from './metrics/metrics.ts'
import { PasswordHasher } from './auth/passwords.ts'
import { RevocationCache } from './auth/revocations.ts'
import { UsageRecorder } from './usage/usage.ts'
import { dueReport, trackSecret } from './inventory/inventory.ts'
import { LIVE_SESSIONS_SETTING, parseLiveSessionCounts } from './sessions/session-maintenance.ts'

/** The HKDF label of the dashboard's cookie key (unchanged, so existing sessions stay valid). */
const DASHBOARD_KEY_INFO = 'rekey/dashboard-session/v1'
import { LoginThrottle, MemoryBackoffStore, RedisBackoffStore } from './auth/login-throttle.ts'
import { openSharedLimits, type SharedLimits } from './limits/shared-limits.ts'

/** What {@link startService} needs. */
export interface ServiceOptions {
  readonly config: RekeyConfig
  /** The environment env-mode keys are read from. Default `process.env`. */
  readonly env?: Env
  readonly log: Logger
  /** Default: the real clock. Tests freeze it. */
  readonly clock?: Clock
  /** An open store to use (not closed by the service); default: opened from `config.store`. */
  readonly store?: Store
  readonly storeOptions?: OpenStoreOptions
  readonly instanceId?: string
  readonly heartbeatIntervalMs?: number
  /** How often per-kid verification counts are written to the store, ms. Default 5000. */
  readonly usageFlushIntervalMs?: number
}

/** A started service. */
export interface Service {
  readonly config: RekeyConfig
  readonly store: Store
  readonly keys: KeyService
  readonly revocations: RevocationCache
  readonly metrics: ServiceMetrics
  readonly auth: AuthService
  /** Managed rotation, finalize, rollback, revoke, emergency and status (the admin API). */
  readonly rotation: KeyRotation
  /** Per-kid verification counters, flushed to the store every few seconds. */
  readonly usage: UsageRecorder
  /** The audit log (append, verify), across master-key segments. */
  readonly audit: AuditLog
  /** The dashboard's cookie-sealing key, derived from the master key here: the HTTP layer never holds the master key. */
  readonly dashboardKey: Buffer
  /** The argon2id hasher, warmed at start; shared by login and the dashboard's sign-in. */
  readonly passwords: PasswordHasher
  /** Scheduled rotation, finalize and reminders; `null` when REKEY_SCHEDULER=off or keys come from the environment. */
  readonly scheduler: Scheduler | null
  /** REKEY_WEBHOOK_URL's poster, or `null`. */
  readonly webhooks: Webhooks | null
  /** Where rate limits and login backoff are counted (Redis with REKEY_REDIS_URL, else this process). */
  readonly limits: SharedLimits
  readonly instanceId: string
  /** True when keys are loaded and the store answers within `timeoutMs`. */
  ready(timeoutMs?: number): Promise<boolean>
  /** Stops timers and subscriptions, then closes the store if the service opened it. */
  stop(): Promise<void>
}

/** Starts the service. Throws `ERR_CONFIG` or `ERR_STORE_UNAVAILABLE` when it cannot. */
export async function startService(options: ServiceOptions): Promise<Service> {
  const { config, log } = options
  const clock = options.clock ?? systemClock
  const instanceId = options.instanceId ?? randomUUID()
  const listenUrl = config.storeListenUrl?.reveal().toString('utf8')
  // Set once metrics exist: rotation steps are counted.
  let countEvent: (type: string) => void = () => {}
  const ops = await openOperations(config, log, {
    create: true,
    follow: true,
    clock,
    checkKeys: config.keySource === 'managed',
    ...(options.store === undefined ? {} : { store: options.store }),
    storeOptions: {
      max: config.storePoolSize,
      ...(listenUrl === undefined ? {} : { listenUrl }),
      ...options.storeOptions,
      onError: (err) => log.warn({ err: { message: (err as Error)?.message, code: (err as { code?: unknown })?.code } }, 'store background error'),
    },
    onEvent: (event) => countEvent(event.type),
    onMasterKey: ({ generated }) => {
      if (generated !== null) {
        log.warn({ file: generated }, 'REKEY_MASTER_KEY is not set: generated a master key file for the embedded store; production must set REKEY_MASTER_KEY')
      } else if (config.masterKey === undefined) {
        log.warn('REKEY_MASTER_KEY is not set: using the generated master key file of the embedded store; production must set REKEY_MASTER_KEY')
      }
    },
  })
  const { store, masterKey, previousMasterKey, audit, webhooks, rotation } = ops
  const computeHash = audit.hash
  if (options.store === undefined && store.dialect === 'postgres') {
    // What this instance may hold at most, so operators can add it up against max_connections.
    const pool = options.storeOptions?.max ?? config.storePoolSize
    log.info({ pool, listen: 1, listenDirect: listenUrl !== undefined },
      `store connection budget: up to ${pool + 1} PostgreSQL connections (pool ${pool} + 1 LISTEN${listenUrl === undefined ? '' : ' on REKEY_STORE_LISTEN_URL'})`)
  }
  const stops: Array<() => Promise<void>> = []
  const stopAll = async (): Promise<void> => {
    for (const stop of stops.reverse()) await stop().catch((err: unknown) => log.error({ err }, 'stopping a service part failed'))
    stops.length = 0
    await ops.close()
  }
  try {
    // Set once the heartbeat exists: each newly loaded key set is acknowledged at once.
    let acknowledge: () => void = () => {}
    const keys = new KeyService({
      source: config.keySource,
      env: options.env ?? process.env,
      store,
      masterKey,
      ...(previousMasterKey === undefined ? {} : { previousMasterKey }),
      computeHash,
      clock,
      accessTokenTtl: config.accessTokenTtl,
      refreshTokenTtl: config.refreshTokenTtl,
      ...(config.accessKeyAlg === undefined ? {} : { accessKeyAlg: config.accessKeyAlg }),
      log,
      onLoad: () => acknowledge(),
    })
    await keys.start()
    stops.push(() => keys.stop())
    if (previousMasterKey === undefined) await trackOwnSecrets(store, audit, config, clock, log)
    // Rotation steps run elsewhere (the CLI) must wait out the lifetimes this instance issues.
    if (config.keySource === 'managed') {
      await announceTokenLifetimes(store, { access: config.accessTokenTtl, refresh: config.refreshTokenTtl })
      // And the JWKS max-age it serves: the publication delay of every rotation, wherever it runs.
      await announceJwksMaxAge(store, config.jwksMaxAge)
    }
    const revocations = new RevocationCache(store, {
      clock,
      // Ended sessions are remembered while their access tokens can live, plus leeway for clock skew.
      retainMs: (config.accessTokenTtl + 120) * 1000,
      onError: (err) => log.warn({ err: { message: (err as Error)?.message } }, 'reading the ended sessions failed; retried on the next change'),
    })
    await revocations.start()
    stops.push(() => revocations.stop())
    const passwords = new PasswordHasher(config.argon2)
    await passwords.warm()
    const metrics = new ServiceMetrics(async () => parseLiveSessionCounts(await store.getSetting(LIVE_SESSIONS_SETTING)), {
      list: () => keys.loaded
        ? [...keys.access.list().map((key) => ({ purpose: 'access', key })), ...keys.refresh.list().map((key) => ({ purpose: 'refresh', key }))]
        : [],
      version: () => keys.version,
    }, () => dueReport(store, config.cadence, clock.now(), 0))
    const usage = new UsageRecorder({
      store, clock, instanceId,
      ...(options.usageFlushIntervalMs === undefined ? {} : { intervalMs: options.usageFlushIntervalMs }),
      onError: (err) => log.warn({ err: { message: (err as Error)?.message } }, 'flushing usage counters failed; kept for the next flush'),
    })
    usage.start()
    stops.push(() => usage.stop())
    const limits = await openSharedLimits({
      url: config.redisUrl?.reveal().toString('utf8'),
      prefix: config.redisPrefix,
      log,
      countError: (limit) => metrics.limitStoreErrors.inc({ limit }),
    })
    stops.push(() => limits.close())
    const throttle = new LoginThrottle({
      store: limits.redis === null ? new MemoryBackoffStore() : new RedisBackoffStore(limits.redis, `${limits.prefix}login-backoff:`),
      policy: {
        freeFailures: config.rateLimit.loginPerAccount,
        baseMs: 1000,
        maxMs: config.rateLimit.loginBackoffMax * 1000,
        windowMs: config.rateLimit.window * 1000,
      },
      onStoreError: (err) => limits.storeError('login-backoff', err),
    })
    const auth = new AuthService({
      store, keys, revocations, passwords, metrics, clock, masterKey, computeHash, log, usage, throttle,
      ...(previousMasterKey === undefined ? {} : { previousMasterKey }),
      settings: {
        registration: config.registration,
        accessTokenTtl: config.accessTokenTtl,
        refreshOverlap: config.refreshOverlap,
        issuer: config.issuer,
        audience: config.audience,
      },
    })
    let lastHeartbeatError = ''
    const heartbeat = new Heartbeat({
      instanceId,
      store,
      clock,
      keysetVersion: () => keys.version,
      ...(options.heartbeatIntervalMs === undefined ? {} : { intervalMs: options.heartbeatIntervalMs }),
      onError: (err) => {
        const message = (err as Error)?.message ?? String(err)
        if (message !== lastHeartbeatError) log.warn({ err: { message } }, 'heartbeat failed')
        lastHeartbeatError = message
      },
    })
    // The first beat lands before the service answers, so status lists every started instance.
    await heartbeat.start()
    // Ready before the first scrape, so that no scrape waits for the inventory.
    void metrics.readDueDates()
    acknowledge = () => { void heartbeat.beat() }
    stops.push(() => heartbeat.stop())
    countEvent = (type) => metrics.rotationEvents.inc({ type })
    const scheduler = config.scheduler.enabled === 'on' && config.keySource === 'managed'
      ? new Scheduler({
        store, rotation, clock, instanceId, cadencePolicy: config.cadence, intervalMs: config.scheduler.interval * 1000, webhooks, log,
        ...(config.finalizeWhenShareBelow === undefined ? {} : { finalizeWhenShareBelow: config.finalizeWhenShareBelow }),
        onMaintenance: (r) => {
          metrics.sessionsPruned.inc({ kind: 'families' }, r.pruned.families)
          metrics.sessionsPruned.inc({ kind: 'tokens' }, r.pruned.tokens)
          metrics.sessionsPruned.inc({ kind: 'instances' }, r.pruned.instances)
          if (r.swept !== null) metrics.sessionsSwept.inc(r.swept)
        },
      })
      : null
    if (scheduler !== null) {
      scheduler.start()
      stops.push(() => scheduler.stop())
    }
    return {
      config, store, keys, revocations, metrics, auth, rotation, usage, instanceId, scheduler, webhooks, audit, passwords, limits,
      dashboardKey: deriveKey(masterKey, DASHBOARD_KEY_INFO),
      async ready(timeoutMs = 1000) {
        if (!keys.loaded) return false
        let timer: NodeJS.Timeout | undefined
        const timeout = new Promise<boolean>((resolve) => { timer = setTimeout(() => resolve(false), timeoutMs) })
        try {
          return await Promise.race([store.ping().then(() => true, () => false), timeout])
        } finally {
          clearTimeout(timer)
        }
      },
      stop: stopAll,
    }
  } catch (err) {
    await stopAll().catch(() => {})
    throw err
  }
}

/**
 * Puts the secrets the service itself depends on into the inventory, so `rekey due` and the
 * reminders know them from the first start. Best effort: a failure is logged, not fatal.
 * (Skipped while REKEY_MASTER_KEY_PREV is set: the audit chain may still be under the old key.)
 */
async function trackOwnSecrets(store: Store, audit: AuditLog, config: RekeyConfig, clock: Clock, log: Logger): Promise<void> {
  const names = config.keySource === 'managed' ? ['jwt-access', 'jwt-refresh', 'master-key'] : ['master-key']
  if (config.metricsToken !== undefined) names.push('METRICS_AUTH_TOKEN')
  for (const name of names) {
    try {
      const known = await store.getSecret(name)
      if (known === null) {
        await trackSecret(store, audit, config.cadence, { secret: name, operator: 'rekey-serve', requestId: null, at: clock.now(), ...(name === 'master-key' ? { kind: 'token' } : {}) })
      }
    } catch (err) {
      log.warn({ err: { message: (err as Error)?.message }, secret: name }, 'could not add a secret to the inventory')
    }
  }
}
