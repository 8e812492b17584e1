/**
 * The store a database rotation is recorded in: its audit chain (hashed under the master key)
 * and the secret inventory. Opened before any database change, so an unreachable store stops
 * the rotation before it starts.
 */
import type { RekeyConfig } from '../../config/load.ts'
import { resolveMasterKey } from '../../config/master-key.ts'
import { AuditLog } from '../../service/audit/audit-log.ts'
import { openStore } from '../../store/open.ts'
import type { Store } from '../../store/store.ts'
import type { ComputeAuditHash } from '../../store/types.ts'

/** The inventory entry of a rotated database URL: kind `database`, rotated every 180 days. */
export const DATABASE_SECRET = Object.freeze({ kind: 'database', cadenceDays: 180 })

/** An open store with the master key and the audit hash, and who is acting. */
export interface AuditTrail {
  readonly store: Store
  readonly masterKey: Buffer
  readonly audit: AuditLog
  /** `audit.hash`, for store calls that take the chain's hash. */
  readonly computeHash: ComputeAuditHash
  readonly operator: string
}

/**
 * Opens the store of `config` and resolves the master key as `rekey serve` does
 * (REKEY_MASTER_KEY, else the embedded store's key file; generated only for a new store).
 */
export async function openAuditTrail(config: Pick<RekeyConfig, 'store' | 'masterKey' | 'masterKeyPrev' | 'envFile'>, operator: string): Promise<AuditTrail> {
  const { key } = await resolveMasterKey(config, { create: true })
  const store = await openStore(config.store)
  try {
    const audit = await AuditLog.open(store, { current: key, previous: config.masterKeyPrev?.reveal() })
    return { store, masterKey: key, audit, computeHash: audit.hash, operator }
  } catch (err) {
    await store.close()
    throw err
  }
}

/** Adds the secret to the inventory (once: a cadence set by hand is kept) and records the rotation. */
export async function recordInventory(trail: AuditTrail, name: string, at: number, method: string, notes: string): Promise<void> {
  if (await trail.store.getSecret(name) === null) await trail.store.upsertSecret({ name, ...DATABASE_SECRET })
  await trail.store.markRotated({ name, at, method, notes })
}
