/**
 * The running service: store, master key, keys, revocation cache, metrics, heartbeat and the
 * auth operations, started in order and stopped in reverse.
 */
import { randomUUID } from 'node:crypto'
import type { Logger } from 'pino'
import type { RekeyConfig } from '../config/load.ts'
import type { Env } from '../core/env.ts'
import { openStore, type OpenStoreOptions } from '../store/open.ts'
import type { Store } from '../store/store.ts'
import { AuthService } from './auth.ts'
import { systemClock, type Clock } from './clock.ts'
import { Heartbeat } from './heartbeat.ts'
import { KeyService } from './keys.ts'
import { announceTokenLifetimes, Lifecycle } from './lifecycle.ts'
import { resolveMasterKey } from './master-key.ts'
import { serviceAuditChain } from './master-key-rotation.ts'
import { Scheduler } from './scheduler.ts'
import { Webhooks } from './webhooks.ts'
import { ServiceMetrics } from './metrics.ts'
import { PasswordHasher } from './passwords.ts'
import { RevocationCache } from './revocations.ts'
import { UsageRecorder } from './usage.ts'
import { dueReport, trackSecret } from './inventory.ts'

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
  readonly lifecycle: Lifecycle
  /** Per-kid verification counters, flushed to the store every few seconds. */
  readonly usage: UsageRecorder
  /** The master key the store's secrets are sealed with (never logged or exported). */
  readonly masterKey: Buffer
  /** The argon2id hasher, warmed at start; shared by login and the dashboard's sign-in. */
  readonly passwords: PasswordHasher
  /** Scheduled rotation, finalize and reminders; `null` when REKEY_SCHEDULER=off or keys come from the environment. */
  readonly scheduler: Scheduler | null
  /** REKEY_WEBHOOK_URL's poster, or `null`. */
  readonly webhooks: Webhooks | null
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
  const { key: masterKey, generated } = await resolveMasterKey(config)
  if (generated !== null) {
    log.warn({ file: generated }, 'REKEY_MASTER_KEY is not set: generated a master key file for the embedded store; production must set REKEY_MASTER_KEY')
  } else if (config.masterKey === undefined) {
    log.warn('REKEY_MASTER_KEY is not set: using the generated master key file of the embedded store; production must set REKEY_MASTER_KEY')
  }
  const ownsStore = options.store === undefined
  const store = options.store ?? await openStore(config.store, {
    ...options.storeOptions,
    onError: (err) => log.warn({ err: { message: (err as Error)?.message, code: (err as { code?: unknown })?.code } }, 'store background error'),
  })
  const stops: Array<() => Promise<void>> = []
  const stopAll = async (): Promise<void> => {
    for (const stop of stops.reverse()) await stop().catch((err: unknown) => log.error({ err }, 'stopping a service part failed'))
    stops.length = 0
    if (ownsStore) await store.close()
  }
  try {
    const previousMasterKey = config.masterKeyPrev?.reveal()
    // With REKEY_MASTER_KEY_PREV set, rows are chained under whichever key the chain is at.
    const chain = await serviceAuditChain(store, masterKey, previousMasterKey)
    stops.push(chain.stop)
    const computeHash = chain.computeHash
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
    if (previousMasterKey === undefined) await trackOwnSecrets(store, masterKey, config, clock, log)
    // Rotation steps run elsewhere (the CLI) must wait out the lifetimes this instance issues.
    if (config.keySource === 'managed') await announceTokenLifetimes(store, { access: config.accessTokenTtl, refresh: config.refreshTokenTtl })
    const revocations = new RevocationCache(store)
    await revocations.start()
    stops.push(() => revocations.stop())
    const passwords = new PasswordHasher(config.argon2)
    await passwords.warm()
    const metrics = new ServiceMetrics(() => store.countLiveSessionsByKid(clock.now()), {
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
    const auth = new AuthService({
      store, keys, revocations, passwords, metrics, clock, masterKey, computeHash, log, usage,
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
    heartbeat.start()
    acknowledge = () => { void heartbeat.beat() }
    stops.push(() => heartbeat.stop())
    const webhooks = config.webhookUrl === undefined ? null : new Webhooks({ url: config.webhookUrl.reveal().toString('utf8'), log })
    if (webhooks !== null) stops.push(() => webhooks.flush())
    const lifecycle = new Lifecycle({
      store, masterKey, computeHash, clock,
      ...(config.accessKeyAlg === undefined ? {} : { accessKeyAlg: config.accessKeyAlg }),
      accessTokenTtl: config.accessTokenTtl,
      refreshTokenTtl: config.refreshTokenTtl,
      cadencePolicy: config.cadence,
      onEvent: (event) => {
        metrics.rotationEvents.inc({ type: event.type })
        webhooks?.notice(event)
      },
    })
    const scheduler = config.scheduler.enabled === 'on' && config.keySource === 'managed'
      ? new Scheduler({ store, lifecycle, clock, instanceId, cadencePolicy: config.cadence, intervalMs: config.scheduler.interval * 1000, webhooks, log })
      : null
    if (scheduler !== null) {
      scheduler.start()
      stops.push(() => scheduler.stop())
    }
    return {
      config, store, keys, revocations, metrics, auth, lifecycle, usage, instanceId, scheduler, webhooks, masterKey, passwords,
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
async function trackOwnSecrets(store: Store, masterKey: Buffer, config: RekeyConfig, clock: Clock, log: Logger): Promise<void> {
  const names = config.keySource === 'managed' ? ['jwt-access', 'jwt-refresh', 'master-key'] : ['master-key']
  if (config.metricsToken !== undefined) names.push('METRICS_AUTH_TOKEN')
  for (const name of names) {
    try {
      const known = await store.getSecret(name)
      if (known === null) {
        await trackSecret(store, masterKey, config.cadence, { secret: name, operator: 'rekey-serve', requestId: null, at: clock.now(), ...(name === 'master-key' ? { kind: 'token' } : {}) })
      }
    } catch (err) {
      log.warn({ err: { message: (err as Error)?.message }, secret: name }, 'could not add a secret to the inventory')
    }
  }
}
