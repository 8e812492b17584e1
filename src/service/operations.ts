/**
 * The one wiring of managed operations, opened by `rekey serve` (through the service) and by
 * every managed CLI command, so the two cannot diverge: the store, the master key (resolved by
 * `config/master-key.ts`), the audit log, webhooks and the key-rotation engine, all from one
 * {@link RekeyConfig}.
 */
import { existsSync } from 'node:fs'
import type { RekeyConfig } from '../config/load.ts'
import { resolveMasterKey } from '../config/master-key.ts'
import { isPostgresLocation } from '../config/store-location.ts'
import { isRekeyError, RekeyError } from '../core/errors.ts'
import { openStore, type OpenStoreOptions } from '../store/open.ts'
import type { Store } from '../store/store.ts'
import { AuditLog } from './audit/audit-log.ts'
import { systemClock, type Clock } from './clock.ts'
import { keyInputOf, resealLegacyKeys } from './keys/keys.ts'
import { KeyRotation, type RotationEvent } from './keys/rotation.ts'
import { Webhooks } from './notify/webhooks.ts'
import { DataKeyLifecycle } from './data-keys/managed-data-keys.ts'

/** The logger the operations warn through (pino's, or the CLI's stderr). */
export interface OperationsLog {
  warn(obj: object, msg: string): void
}

/** Options of {@link openOperations}. */
export interface OpenOperationsOptions {
  /** May this open create the store (and its master key)? `serve` and `admin create` may; other commands refuse a store that does not exist. Default false. */
  readonly create?: boolean
  /** An open store to use (not closed by {@link Operations.close}); default: opened from `config.store`. */
  readonly store?: Store
  readonly storeOptions?: OpenStoreOptions
  readonly clock?: Clock
  /** Keep following the store, so a master-key rotation committed elsewhere switches the audit key (a long-lived service). Default false. */
  readonly follow?: boolean
  /** Told of each committed rotation step, besides the webhooks (metrics). */
  readonly onEvent?: (event: RotationEvent) => void
  /** Check that the master key opens the store's keys before anything is written. Default true (the service skips it in env mode: its keys are not in the store). */
  readonly checkKeys?: boolean
  /** Told when the master key file was generated, or is used without REKEY_MASTER_KEY. */
  readonly onMasterKey?: (event: { generated: string | null }) => void
}

/** Managed operations on one store. */
export interface Operations {
  readonly config: RekeyConfig
  readonly store: Store
  /** REKEY_MASTER_KEY (or the embedded store's key file). Never logged or handed to the HTTP layer. */
  readonly masterKey: Buffer
  /** REKEY_MASTER_KEY_PREV, while a master-key rotation is rolled out. */
  readonly previousMasterKey: Buffer | undefined
  readonly audit: AuditLog
  readonly webhooks: Webhooks | null
  /** Rotation, finalize, rollback, revoke, emergency, status. */
  readonly rotation: KeyRotation
  /** The managed data keys (ENCRYPTION_KEY kept in the store): rotate, finalize, rollback. */
  readonly dataKeys: DataKeyLifecycle
  /** Flushes webhooks, stops following the store, closes it if it was opened here. */
  close(): Promise<void>
}

/**
 * Opens the managed operations of `config`. Refuses with ERR_CONFIG, before anything is
 * created or written, a SQLite store that does not exist (unless `create`), a store with data
 * but no master key, and a master key that does not open the store's keys.
 */
export async function openOperations(config: RekeyConfig, log: OperationsLog, options: OpenOperationsOptions = {}): Promise<Operations> {
  const create = options.create === true
  if (options.store === undefined && !create && !isPostgresLocation(config.store) && !existsSync(config.store)) {
    throw new RekeyError('ERR_CONFIG', `no store at ${config.store}: start \`rekey serve\` once there, or name the store with --store or REKEY_STORE`)
  }
  const { key: masterKey, generated } = await resolveMasterKey(config, { create })
  options.onMasterKey?.({ generated })
  const previousMasterKey = config.masterKeyPrev?.reveal()
  const ownsStore = options.store === undefined
  const store = options.store ?? await openStore(config.store, options.storeOptions)
  const closers: Array<() => Promise<void>> = ownsStore ? [() => store.close()] : []
  const closeAll = async (): Promise<void> => {
    for (const close of closers.splice(0).reverse()) await close()
  }
  try {
    if (options.checkKeys !== false) {
      const masterKeys = previousMasterKey === undefined ? [masterKey] : [masterKey, previousMasterKey]
      for (const key of (await store.getKeyset()).keys) {
        try {
          keyInputOf(masterKeys, key)
        } catch (err) {
          // A key row edited behind rekey's back (its state no longer matches its seal): refused loudly.
          if (isRekeyError(err) && err.code === 'ERR_UNSAFE') throw err
          // Writing keys or audit rows under another master key would break every instance and the chain.
          throw new RekeyError('ERR_CONFIG', 'the master key does not open the keys of this store: set the REKEY_MASTER_KEY that rekey serve uses')
        }
      }
    }
    const audit = await AuditLog.open(store, { current: masterKey, previous: previousMasterKey }, { follow: options.follow === true })
    closers.push(() => audit.close())
    // Rows sealed before keys were bound to their state are bound now (once; a no-op after).
    // During a master-key rotation the rotation itself re-wraps (and binds) every key.
    if (options.checkKeys !== false && previousMasterKey === undefined) await resealLegacyKeys(store, masterKey, audit.hash, 'rekey', Date.now())
    const webhooks = config.webhookUrl === undefined ? null : new Webhooks({ url: config.webhookUrl.reveal().toString('utf8'), log })
    if (webhooks !== null) closers.push(() => webhooks.flush())
    const rotation = new KeyRotation({
      store, masterKey, computeHash: audit.hash,
      ...(previousMasterKey === undefined ? {} : { previousMasterKey }),
      clock: options.clock ?? systemClock,
      ...(config.accessKeyAlg === undefined ? {} : { accessKeyAlg: config.accessKeyAlg }),
      accessTokenTtl: config.accessTokenTtl,
      refreshTokenTtl: config.refreshTokenTtl,
      cadencePolicy: config.cadence,
      publishDelayMs: config.jwksMaxAge * 1000,
      onEvent: (event) => {
        options.onEvent?.(event)
        webhooks?.notice(event)
      },
    })
    const dataKeys = new DataKeyLifecycle({
      store, masterKey, computeHash: audit.hash, rotation, clock: options.clock ?? systemClock, cadencePolicy: config.cadence,
      ...(previousMasterKey === undefined ? {} : { previousMasterKey }),
    })
    return { config, store, masterKey, previousMasterKey, audit, webhooks, rotation, dataKeys, close: closeAll }
  } catch (err) {
    await closeAll().catch(() => {})
    throw err
  }
}

