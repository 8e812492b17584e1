/**
 * Managed keys and the key-set version.
 *
 * Every mutation first moves the version with `UPDATE keyset ... WHERE version = expected`:
 * the row lock serializes writers, and a writer that read an older version changes no row and
 * gets ERR_CONFLICT. So of two operators rotating at once, one wins and nothing of the other's
 * is written.
 */
import type { KeyRecord, KeyState, KeyUpdate, Keyset, NewKey } from '../types.ts'
import type { KeyMutation } from '../store.ts'
import { conflict } from '../errors.ts'
import { appendOptional } from './audit.ts'
import { bumpChange } from './changes.ts'
import { int, intOrNull, text, textOrNull } from './executor.ts'
import type { SqlExecutor, SqlParam, SqlRow } from './executor.ts'

const COLUMNS = 'kid, purpose, alg, state, sealed_material, created_at, activated_at, demoted_at, retire_after, retired_at, revoked_at, revoke_reason'

/** KeyUpdate fields and their columns, in a fixed order. */
const UPDATABLE = [
  ['state', 'state'], ['sealedMaterial', 'sealed_material'], ['activatedAt', 'activated_at'],
  ['demotedAt', 'demoted_at'], ['retireAfter', 'retire_after'], ['retiredAt', 'retired_at'],
  ['revokedAt', 'revoked_at'], ['revokeReason', 'revoke_reason'],
] as const satisfies ReadonlyArray<readonly [keyof KeyUpdate, string]>

/** How many consistent-read attempts `getKeyset` makes before giving up with ERR_CONFLICT. */
const KEYSET_READ_ATTEMPTS = 5

function toKey(row: SqlRow): KeyRecord {
  return {
    kid: text(row, 'kid'),
    purpose: text(row, 'purpose'),
    alg: text(row, 'alg'),
    state: text(row, 'state') as KeyState,
    sealedMaterial: text(row, 'sealed_material'),
    createdAt: int(row, 'created_at'),
    activatedAt: intOrNull(row, 'activated_at'),
    demotedAt: intOrNull(row, 'demoted_at'),
    retireAfter: intOrNull(row, 'retire_after'),
    retiredAt: intOrNull(row, 'retired_at'),
    revokedAt: intOrNull(row, 'revoked_at'),
    revokeReason: textOrNull(row, 'revoke_reason'),
  }
}

export async function listKeys(q: SqlExecutor, purpose?: string): Promise<KeyRecord[]> {
  const rows = purpose === undefined
    ? await q.all(`SELECT ${COLUMNS} FROM keys ORDER BY created_at, kid`)
    : await q.all(`SELECT ${COLUMNS} FROM keys WHERE purpose = $1 ORDER BY created_at, kid`, [purpose])
  return rows.map(toKey)
}

export async function getKeysetVersion(q: SqlExecutor): Promise<number> {
  const rows = await q.all('SELECT version FROM keyset WHERE id = 1')
  return rows[0] === undefined ? 0 : int(rows[0], 'version')
}

/**
 * Keys and version, consistent without a snapshot transaction: every key change moves the
 * version in the same commit, so equal versions before and after the read prove no change.
 */
export async function getKeyset(q: SqlExecutor, purpose?: string): Promise<Keyset> {
  for (let attempt = 0; attempt < KEYSET_READ_ATTEMPTS; attempt++) {
    const before = await getKeysetVersion(q)
    const keys = await listKeys(q, purpose)
    if (await getKeysetVersion(q) === before) return { version: before, keys }
  }
  throw conflict('the key set kept changing while it was read; retry')
}

export async function insertKeyRow(q: SqlExecutor, key: NewKey): Promise<void> {
  await q.run(
    `INSERT INTO keys (${COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
    [
      key.kid, key.purpose, key.alg, key.state, key.sealedMaterial, key.createdAt, key.activatedAt ?? null,
      key.demotedAt ?? null, key.retireAfter ?? null, key.retiredAt ?? null, key.revokedAt ?? null, key.revokeReason ?? null,
    ],
  )
}

async function updateKeyRow(q: SqlExecutor, update: KeyUpdate): Promise<void> {
  const params: SqlParam[] = [update.kid]
  const sets: string[] = []
  for (const [field, column] of UPDATABLE) {
    const value = update[field]
    if (value === undefined) continue
    params.push(value)
    sets.push(`${column} = $${params.length}`)
  }
  let where = 'kid = $1'
  if (update.expectState !== undefined) {
    params.push(update.expectState)
    where += ` AND state = $${params.length}`
  }
  // With nothing to set, still check that the key exists in the expected state.
  const changed = sets.length === 0
    ? (await q.all(`SELECT kid FROM keys WHERE ${where}`, params)).length
    : await q.run(`UPDATE keys SET ${sets.join(', ')} WHERE ${where}`, params)
  if (changed === 0) {
    throw conflict(update.expectState === undefined
      ? `key ${update.kid} does not exist`
      : `key ${update.kid} is not in state ${update.expectState}`)
  }
}

/** Applies a key mutation inside the caller's transaction; the new key-set version. */
export async function transitionKeys(q: SqlExecutor, m: KeyMutation): Promise<number> {
  const moved = await q.all('UPDATE keyset SET version = version + 1 WHERE id = 1 AND version = $1 RETURNING version', [m.expectedVersion])
  if (moved[0] === undefined) throw conflict(`the key set changed since version ${m.expectedVersion}; reload and retry`)
  const updates = m.update ?? []
  // One `current` per purpose is a unique index: demote before inserting or promoting.
  for (const u of updates) if (u.state !== 'current') await updateKeyRow(q, u)
  for (const key of m.insert ?? []) await insertKeyRow(q, key)
  for (const u of updates) if (u.state === 'current') await updateKeyRow(q, u)
  await bumpChange(q, 'keys')
  await appendOptional(q, m.audit)
  return int(moved[0], 'version')
}
