/**
 * The emergency's session sweep: ends, one short transaction per batch, the families created
 * at or before the emergency that are still live. No change channel is signalled: the
 * emergency's committed not-before already refuses every token of theirs on every instance.
 *
 * PostgreSQL sweeps in physical order, a range of heap pages per batch (a TID range scan): each
 * page is read and written once for the whole sweep, where an index order visits every page
 * again and again (and writes a full-page image to the WAL at each first visit after a
 * checkpoint). The range ends at the table's size when the sweep starts: every family the
 * sweep must end exists by then, and only a revocation moves a family row (an UPDATE writes a
 * new row version elsewhere), so no live family is skipped. Batches commit asynchronously
 * (`synchronous_commit = off`, for them only): a database crash can lose the last batches, but
 * the marker that the sweep is done is cleared by a synchronous commit, which flushes every
 * batch before it, and an unfinished sweep is resumed from its marker.
 *
 * SQLite has one writer and no pages to address: it walks the partial index of unrevoked
 * families in (expires_at, id) order.
 */
import type { SessionCursor, SessionSweepBatch } from '../store.ts'
import { int, text } from './executor.ts'
import type { SqlExecutor } from './executor.ts'

/** Heap pages of the first batch; later batches are sized from the rows the last one ended. */
const FIRST_PAGES = 32
/** The most pages one batch reads (64 MiB): long runs of ended or expired families go fast. */
const MAX_PAGES = 8192

export interface SweepBatchInput {
  /** The emergency's time: families created after it are not ended. */
  readonly at: number
  /** Families expiring at or before `now` are left to pruning. */
  readonly now: number
  readonly reason: string
  readonly after: SessionCursor | null
  /** Families one batch ends, about (PostgreSQL sizes page ranges to it) or at most (SQLite). */
  readonly limit: number
}

export async function endSessionsBatch(q: SqlExecutor, input: SweepBatchInput): Promise<SessionSweepBatch> {
  return q.polled ? endByExpiry(q, input) : endByPages(q, input)
}

async function endByPages(q: SqlExecutor, input: SweepBatchInput): Promise<SessionSweepBatch> {
  let cursor = input.after?.kind === 'pages' ? input.after : null
  if (cursor === null) {
    const size = await q.all(`SELECT (pg_relation_size('session_families') / current_setting('block_size')::int)::bigint AS pages`)
    cursor = { kind: 'pages', page: 0, pages: FIRST_PAGES, end: int(size[0] ?? {}, 'pages') }
  }
  if (cursor.page >= cursor.end) return { ended: 0, cursor: null }
  const upTo = Math.min(cursor.end, cursor.page + cursor.pages)
  await q.all(`SELECT set_config('synchronous_commit', 'off', true)`)
  const ended = await q.run(
    `UPDATE session_families SET revoked_at = $1, revoke_reason = $2
     WHERE ctid >= format('(%s,0)', $4::bigint)::tid AND ctid < format('(%s,0)', $5::bigint)::tid
       AND revoked_at IS NULL AND expires_at > $3 AND created_at <= $1`,
    [input.at, input.reason, input.now, cursor.page, upTo],
  )
  if (upTo >= cursor.end) return { ended, cursor: null }
  // Aim the next range at `limit` families: as many pages as this density needs, growing at most 8-fold.
  const wanted = ended === 0 ? cursor.pages * 8 : Math.round((cursor.pages * input.limit) / ended)
  const pages = Math.max(1, Math.min(MAX_PAGES, cursor.pages * 8, wanted))
  return { ended, cursor: { kind: 'pages', page: upTo, pages, end: cursor.end } }
}

async function endByExpiry(q: SqlExecutor, input: SweepBatchInput): Promise<SessionSweepBatch> {
  const after = input.after?.kind === 'expiry' ? input.after : { expiresAt: input.now, id: '' }
  const picked = await q.all(
    `SELECT id, expires_at FROM session_families
     WHERE revoked_at IS NULL AND (expires_at, id) > ($1, $2) AND expires_at > $3
     ORDER BY expires_at, id LIMIT $4`,
    [after.expiresAt, after.id, input.now, input.limit],
  )
  const last = picked[picked.length - 1]
  if (last === undefined) return { ended: 0, cursor: null }
  const ids = picked.map((row) => text(row, 'id'))
  const list = ids.map((_, i) => `$${i + 4}`).join(', ')
  const ended = await q.run(
    `UPDATE session_families SET revoked_at = $1, revoke_reason = $2
     WHERE id IN (${list}) AND revoked_at IS NULL AND created_at <= $3`,
    [input.at, input.reason, input.at, ...ids],
  )
  const cursor = { kind: 'expiry', expiresAt: int(last, 'expires_at'), id: text(last, 'id') } as const
  return { ended, cursor: picked.length < input.limit ? null : cursor }
}
