/**
 * The store a database rotation is recorded in: its audit chain (hashed under the master key)
 * and the secret inventory. Opened before any database change, so an unreachable store stops
 * the rotation before it starts.
 */
import { loadConfig } from '../../config/load.ts'
import { auditHasher } from '../../service/audit.ts'
import { resolveMasterKey } from '../../service/master-key.ts'
import { openStore } from '../../store/open.ts'
import type { Store } from '../../store/store.ts'
import type { ComputeAuditHash } from '../../store/types.ts'

/** The inventory entry of a rotated database URL: kind `database`, rotated every 180 days. */
export const DATABASE_SECRET = Object.freeze({ kind: 'database', cadenceDays: 180 })

/** An open store with the master key and the audit hash, and who is acting. */
export interface AuditTrail {
  readonly store: Store
  readonly masterKey: Buffer
  readonly computeHash: ComputeAuditHash
  readonly operator: string
}

/**
 * Opens the store at `location` and resolves the master key as `rekey serve` does
 * (REKEY_MASTER_KEY, else the embedded store's generated key file). Only REKEY_MASTER_KEY is
 * read from `env`: the JWT variables of the caller's environment are not this command's concern.
 */
export async function openAuditTrail(location: string, env: Record<string, string | undefined>, operator: string): Promise<AuditTrail> {
  const config = loadConfig({ env: { REKEY_MASTER_KEY: env.REKEY_MASTER_KEY }, flags: { store: location } })
  const { key } = await resolveMasterKey(config)
  const store = await openStore(config.store)
  return { store, masterKey: key, computeHash: auditHasher(key), operator }
}

/** Adds the secret to the inventory (once: a cadence set by hand is kept) and records the rotation. */
export async function recordInventory(trail: AuditTrail, name: string, at: number, method: string, notes: string): Promise<void> {
  if (await trail.store.getSecret(name) === null) await trail.store.upsertSecret({ name, ...DATABASE_SECRET })
  await trail.store.markRotated({ name, at, method, notes })
}
