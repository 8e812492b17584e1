/**
 * The audit log: append-only rows forming a hash chain. The hash is computed by the caller
 * (an HMAC under a key derived from the master key); the store guarantees the chain is linear:
 * appenders are serialized by locking the single `audit_lock` row (PostgreSQL) or by the
 * write transaction's database lock (SQLite), so two rows never share a `prev_hash`.
 */
import type { AuditEventInput, AuditRecord, AuditWrite, ComputeAuditHash } from '../types.ts'
import type { AuditQuery } from '../store.ts'
import { int, text, textOrNull } from './executor.ts'
import type { SqlExecutor, SqlParam, SqlRow } from './executor.ts'

const COLUMNS = 'seq, at, secret, operator, method, notes, request_id, prev_hash, hash'

function toAudit(row: SqlRow): AuditRecord {
  return {
    seq: int(row, 'seq'),
    at: int(row, 'at'),
    secret: text(row, 'secret'),
    operator: text(row, 'operator'),
    method: text(row, 'method'),
    notes: text(row, 'notes'),
    requestId: textOrNull(row, 'request_id'),
    prevHash: textOrNull(row, 'prev_hash'),
    hash: text(row, 'hash'),
  }
}

/** Appends one row inside the caller's transaction. */
export async function appendAudit(q: SqlExecutor, event: AuditEventInput, computeHash: ComputeAuditHash): Promise<AuditRecord> {
  // Held until commit: concurrent appenders on other connections wait here, then read our row.
  await q.all(`SELECT id FROM audit_lock WHERE id = 1${q.forUpdate}`)
  const last = (await q.all('SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1'))[0]
  const seq = last === undefined ? 1 : int(last, 'seq') + 1
  const prevHash = last === undefined ? null : text(last, 'hash')
  const row = {
    seq,
    at: event.at,
    secret: event.secret,
    operator: event.operator,
    method: event.method,
    notes: event.notes,
    requestId: event.requestId ?? null,
  }
  const hash = computeHash(prevHash, row)
  if (typeof hash !== 'string' || hash === '') throw new TypeError('computeHash must return a non-empty string')
  await q.run(
    `INSERT INTO audit_events (${COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
    [seq, row.at, row.secret, row.operator, row.method, row.notes, row.requestId, prevHash, hash],
  )
  return { ...row, prevHash, hash }
}

/** Appends the optional audit row of a mutation. */
export async function appendOptional(q: SqlExecutor, audit: AuditWrite | undefined): Promise<void> {
  if (audit !== undefined) await appendAudit(q, audit.event, audit.computeHash)
}

export async function listAudit(q: SqlExecutor, query: AuditQuery = {}): Promise<AuditRecord[]> {
  const where: string[] = []
  const params: SqlParam[] = []
  if (query.since !== undefined) {
    params.push(query.since)
    where.push(`at >= $${params.length}`)
  }
  if (query.afterSeq !== undefined) {
    params.push(query.afterSeq)
    where.push(`seq > $${params.length}`)
  }
  let sql = `SELECT ${COLUMNS} FROM audit_events${where.length > 0 ? ` WHERE ${where.join(' AND ')}` : ''} ORDER BY seq`
  if (query.limit !== undefined) {
    params.push(query.limit)
    sql += ` LIMIT $${params.length}`
  }
  return (await q.all(sql, params)).map(toAudit)
}

/** When the first row naming exactly `secret` was written; `null` if none (an index lookup). */
export async function firstAuditAt(q: SqlExecutor, secret: string): Promise<number | null> {
  const rows = await q.all('SELECT at FROM audit_events WHERE secret = $1 ORDER BY seq LIMIT 1', [secret])
  return rows[0] === undefined ? null : int(rows[0], 'at')
}
