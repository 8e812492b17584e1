/**
 * Sessions as refresh-token families, with rotation and reuse detection.
 *
 * `rotateToken` reads the token and its family with the rows locked (`FOR UPDATE` on
 * PostgreSQL; the write transaction's database lock on SQLite), so concurrent calls on one
 * token are serialized and the later ones see it used: exactly one gets `rotated`.
 */
import type { NewSession, RefreshTokenRecord, SessionFamily } from '../types.ts'
import type { MutationOptions, PruneReport, RotateResult, RotateTokenInput } from '../store.ts'
import { appendOptional } from './audit.ts'
import { bumpChange, bumpUserChange } from './changes.ts'
import { int, intOrNull, text, textOrNull } from './executor.ts'
import type { SqlExecutor, SqlRow } from './executor.ts'
import { conflict } from '../errors.ts'

const TOKEN_COLUMNS = 'token_hash, family_id, kid, issued_at, expires_at, used_at, successor_hash, parent_hash, successor_blob'
const FAMILY_COLUMNS = 'id, user_id, created_at, expires_at, revoked_at, revoke_reason'

function toFamily(row: SqlRow): SessionFamily {
  return {
    id: text(row, 'id'),
    userId: text(row, 'user_id'),
    createdAt: int(row, 'created_at'),
    expiresAt: int(row, 'expires_at'),
    revokedAt: intOrNull(row, 'revoked_at'),
    revokeReason: textOrNull(row, 'revoke_reason'),
  }
}

function toToken(row: SqlRow): RefreshTokenRecord {
  return {
    tokenHash: text(row, 'token_hash'),
    familyId: text(row, 'family_id'),
    kid: text(row, 'kid'),
    issuedAt: int(row, 'issued_at'),
    expiresAt: int(row, 'expires_at'),
    usedAt: intOrNull(row, 'used_at'),
    successorHash: textOrNull(row, 'successor_hash'),
    parentHash: textOrNull(row, 'parent_hash'),
    successorBlob: textOrNull(row, 'successor_blob'),
  }
}

export async function createFamily(q: SqlExecutor, s: NewSession): Promise<void> {
  await q.run(
    'INSERT INTO session_families (id, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)',
    [s.familyId, s.userId, s.createdAt, s.expiresAt],
  )
  if (s.token === undefined) return
  await q.run(
    'INSERT INTO refresh_tokens (token_hash, family_id, kid, issued_at, expires_at) VALUES ($1, $2, $3, $4, $5)',
    [s.token.tokenHash, s.familyId, s.token.kid, s.token.issuedAt, s.token.expiresAt],
  )
}

export async function getRefreshToken(q: SqlExecutor, tokenHash: string): Promise<RefreshTokenRecord | null> {
  const rows = await q.all(`SELECT ${TOKEN_COLUMNS} FROM refresh_tokens WHERE token_hash = $1`, [tokenHash])
  return rows[0] === undefined ? null : toToken(rows[0])
}

export async function getFamilyByTokenHash(q: SqlExecutor, tokenHash: string): Promise<SessionFamily | null> {
  const rows = await q.all(
    `SELECT ${FAMILY_COLUMNS} FROM session_families WHERE id = (SELECT family_id FROM refresh_tokens WHERE token_hash = $1)`,
    [tokenHash],
  )
  return rows[0] === undefined ? null : toFamily(rows[0])
}

export async function rotateToken(q: SqlExecutor, input: RotateTokenInput): Promise<RotateResult> {
  const { oldHash, next, now } = input
  const row = (await q.all(
    `SELECT t.family_id, t.expires_at AS token_expires_at, t.used_at, t.successor_hash, t.successor_blob,
            f.user_id, f.expires_at AS family_expires_at, f.revoked_at
     FROM refresh_tokens t JOIN session_families f ON f.id = t.family_id
     WHERE t.token_hash = $1${q.forUpdate}`,
    [oldHash],
  ))[0]
  if (row === undefined) return reuseOfPruned(q, input)
  if (intOrNull(row, 'revoked_at') !== null) return { outcome: 'invalid', reason: 'revoked' }
  if (int(row, 'family_expires_at') <= now || int(row, 'token_expires_at') <= now) return { outcome: 'invalid', reason: 'expired' }
  const familyId = text(row, 'family_id')
  const userId = text(row, 'user_id')
  const usedAt = intOrNull(row, 'used_at')

  if (usedAt === null) {
    const marked = await q.run(
      'UPDATE refresh_tokens SET used_at = $2, successor_hash = $3, successor_blob = $4 WHERE token_hash = $1 AND used_at IS NULL',
      [oldHash, now, next.tokenHash, input.successorBlob ?? null],
    )
    // Cannot happen while the row is locked; guards against a dialect that lost the lock.
    if (marked !== 1) throw conflict('the refresh token was rotated concurrently')
    await q.run(
      'INSERT INTO refresh_tokens (token_hash, family_id, kid, issued_at, expires_at, parent_hash) VALUES ($1, $2, $3, $4, $5, $6)',
      [next.tokenHash, familyId, next.kid, next.issuedAt, next.expiresAt, oldHash],
    )
    return { outcome: 'rotated', familyId, userId }
  }
  if (now - usedAt <= input.overlapMs) {
    return { outcome: 'overlap', familyId, userId, successorHash: text(row, 'successor_hash'), successorBlob: textOrNull(row, 'successor_blob') }
  }
  await revokeFamily(q, familyId, 'reuse', now, { audit: input.reuseAudit?.({ familyId, userId }) })
  return { outcome: 'reuse', familyId, userId }
}

/**
 * An unknown hash whose signed token names a live family (`familyId`): its row was pruned
 * after use, so this is a reuse, and the family ends as for any other reuse.
 */
async function reuseOfPruned(q: SqlExecutor, input: RotateTokenInput): Promise<RotateResult> {
  if (input.familyId === undefined) return { outcome: 'invalid', reason: 'unknown' }
  const family = (await q.all(
    `SELECT id, user_id FROM session_families WHERE id = $1 AND revoked_at IS NULL AND expires_at > $2${q.forUpdate}`,
    [input.familyId, input.now],
  ))[0]
  if (family === undefined) return { outcome: 'invalid', reason: 'unknown' }
  const familyId = text(family, 'id')
  const userId = text(family, 'user_id')
  await revokeFamily(q, familyId, 'reuse', input.now, { audit: input.reuseAudit?.({ familyId, userId }) })
  return { outcome: 'reuse', familyId, userId }
}

/**
 * PostgreSQL: the refresh in one round trip, through `rekey_rotate_token` (migration 2). The
 * function locks the token and its family, so concurrent calls serialize exactly as in
 * {@link rotateToken}. `null` when it found a reuse: the caller ends the family with
 * {@link rotateToken} in a transaction, where the audit row is appended.
 */
export async function rotateTokenOneTrip(q: SqlExecutor, input: RotateTokenInput): Promise<RotateResult | null> {
  const { next } = input
  const row = (await q.all(
    'SELECT outcome, family_id, user_id, successor_hash, successor_blob FROM rekey_rotate_token($1, $2, $3, $4::bigint, $5::bigint, $6, $7::bigint, $8::bigint, $9)',
    [input.oldHash, next.tokenHash, next.kid, next.issuedAt, next.expiresAt, input.successorBlob ?? null, input.now, input.overlapMs, input.familyId ?? null],
    'rekey_rotate_token',
  ))[0]
  const outcome = row === undefined ? 'unknown' : text(row, 'outcome')
  switch (outcome) {
    case 'rotated': return { outcome: 'rotated', familyId: text(row!, 'family_id'), userId: text(row!, 'user_id') }
    case 'overlap': return {
      outcome: 'overlap', familyId: text(row!, 'family_id'), userId: text(row!, 'user_id'),
      successorHash: text(row!, 'successor_hash'), successorBlob: textOrNull(row!, 'successor_blob'),
    }
    case 'reuse': return null
    case 'revoked': return { outcome: 'invalid', reason: 'revoked' }
    case 'expired': return { outcome: 'invalid', reason: 'expired' }
    default: return { outcome: 'invalid', reason: 'unknown' }
  }
}

export async function revokeFamily(q: SqlExecutor, familyId: string, reason: string, now: number, opts: MutationOptions = {}): Promise<boolean> {
  const rows = await q.all(
    'UPDATE session_families SET revoked_at = $2, listed_at = $2, revoke_reason = $3 WHERE id = $1 AND revoked_at IS NULL RETURNING user_id',
    [familyId, now, reason],
  )
  const changed = rows.length
  if (changed > 0) {
    await bumpUserChange(q, 'revocations', text(rows[0]!, 'user_id'))
    await appendOptional(q, opts.audit)
  }
  return changed > 0
}

export async function revokeFamilyByTokenHash(q: SqlExecutor, tokenHash: string, reason: string, now: number, opts: MutationOptions = {}):
Promise<{ familyId: string, userId: string, revoked: boolean } | null> {
  const family = await getFamilyByTokenHash(q, tokenHash)
  if (family === null) return null
  const revoked = await revokeFamily(q, family.id, reason, now, opts)
  return { familyId: family.id, userId: family.userId, revoked }
}

export async function revokeAllForUser(q: SqlExecutor, userId: string, reason: string, now: number, opts: MutationOptions = {}): Promise<number> {
  const changed = await q.run(
    'UPDATE session_families SET revoked_at = $2, listed_at = $2, revoke_reason = $3 WHERE user_id = $1 AND revoked_at IS NULL',
    [userId, now, reason],
  )
  if (changed > 0) {
    await bumpUserChange(q, 'revocations', userId)
    await appendOptional(q, opts.audit)
  }
  return changed
}

/** Ends every live family of a user but `keepFamilyId` (a password change keeps the session that made it). */
export async function revokeOtherSessions(q: SqlExecutor, userId: string, keepFamilyId: string, reason: string, now: number, opts: MutationOptions = {}): Promise<number> {
  const changed = await q.run(
    'UPDATE session_families SET revoked_at = $3, listed_at = $3, revoke_reason = $4 WHERE user_id = $1 AND id <> $2 AND revoked_at IS NULL',
    [userId, keepFamilyId, now, reason],
  )
  if (changed > 0) {
    await bumpChange(q, 'revocations')
    await appendOptional(q, opts.audit)
  }
  return changed
}

/**
 * Families revoked at or after `since`, but not by `except` reasons (an emergency ends every
 * session; the global not-before already refuses their tokens). Reads `listed_at`, which every
 * revocation but the emergency's sweep sets to `revoked_at`, through its partial index, so
 * instances can re-read it on every `revocations` signal. (No index names `revoked_at`: the
 * sweep's updates stay HOT, see migration 4.)
 */
export async function listRevokedSessions(q: SqlExecutor, since: number, except: readonly string[] = []): Promise<{ id: string, revokedAt: number }[]> {
  const params: (string | number)[] = [since, ...except]
  const not = except.length === 0 ? '' : ` AND revoke_reason NOT IN (${except.map((_, i) => `$${i + 2}`).join(', ')})`
  const rows = await q.all(`SELECT id, revoked_at FROM session_families WHERE listed_at IS NOT NULL AND listed_at >= $1${not}`, params)
  return rows.map((row) => ({ id: text(row, 'id'), revokedAt: int(row, 'revoked_at') }))
}

export async function revokeAllSessions(q: SqlExecutor, reason: string, now: number, opts: MutationOptions = {}): Promise<number> {
  const changed = await q.run(
    'UPDATE session_families SET revoked_at = $1, listed_at = $1, revoke_reason = $2 WHERE revoked_at IS NULL',
    [now, reason],
  )
  if (changed > 0) {
    await bumpChange(q, 'revocations')
    await appendOptional(q, opts.audit)
  }
  return changed
}

export async function countLiveSessionsByKid(q: SqlExecutor, now: number): Promise<Map<string, number>> {
  const rows = await q.all(
    `SELECT t.kid, COUNT(*) AS n
     FROM refresh_tokens t JOIN session_families f ON f.id = t.family_id
     WHERE t.used_at IS NULL AND t.expires_at > $1 AND f.revoked_at IS NULL AND f.expires_at > $1
     GROUP BY t.kid`,
    [now],
  )
  return new Map(rows.map((row) => [text(row, 'kid'), int(row, 'n')]))
}

export async function pruneSessions(q: SqlExecutor, before: number): Promise<number> {
  await q.run(
    `DELETE FROM refresh_tokens WHERE family_id IN
       (SELECT id FROM session_families WHERE expires_at < $1 OR revoked_at < $1)`,
    [before],
  )
  return q.run('DELETE FROM session_families WHERE expires_at < $1 OR revoked_at < $1', [before])
}

/**
 * Live sessions at `now` whose live refresh token one of `kids` signed: token unused and
 * unexpired, family unexpired and not revoked at or before `now`. Reads only those kids' unused
 * tokens (the partial index `refresh_tokens_live_kid`), never the whole table.
 */
export async function countLiveSessionsForKids(q: SqlExecutor, kids: readonly string[], now: number): Promise<Map<string, number>> {
  const counts = new Map<string, number>()
  if (kids.length === 0) return counts
  const list = kids.map((_, i) => `$${i + 2}`).join(', ')
  const rows = await q.all(
    `SELECT t.kid, COUNT(*) AS n
     FROM refresh_tokens t JOIN session_families f ON f.id = t.family_id
     WHERE t.kid IN (${list}) AND t.used_at IS NULL AND t.expires_at > $1
       AND f.expires_at > $1 AND (f.revoked_at IS NULL OR f.revoked_at > $1)
     GROUP BY t.kid`,
    [now, ...kids],
  )
  for (const row of rows) counts.set(text(row, 'kid'), int(row, 'n'))
  return counts
}

/**
 * One bounded round of pruning at `now`: families that expired or were revoked before
 * `before` (with their tokens; the ones the emergency's sweep ended go once expired), and used
 * tokens whose overlap window closed before `usedBefore` (their successor blobs go with them).
 * At most `limit` of each.
 */
export async function pruneSessionsBatch(q: SqlExecutor, input: { before: number, usedBefore: number, limit: number }): Promise<PruneReport> {
  const expired = await q.all('SELECT id FROM session_families WHERE expires_at < $1 LIMIT $2', [input.before, input.limit])
  // Families the emergency ended (no `listed_at`) go with the expired ones, when they expire.
  const revoked = await q.all('SELECT id FROM session_families WHERE listed_at < $1 LIMIT $2', [input.before, input.limit])
  const picked = [...new Set([...expired, ...revoked].map((row) => text(row, 'id')))]
  let tokens = 0
  let families = 0
  if (picked.length > 0) {
    const list = picked.map((_, i) => `$${i + 1}`).join(', ')
    tokens += await q.run(`DELETE FROM refresh_tokens WHERE family_id IN (${list})`, picked)
    families = await q.run(`DELETE FROM session_families WHERE id IN (${list})`, picked)
  }
  tokens += await q.run(
    'DELETE FROM refresh_tokens WHERE token_hash IN (SELECT token_hash FROM refresh_tokens WHERE used_at < $1 LIMIT $2)',
    [input.usedBefore, input.limit],
  )
  return { families, tokens }
}
