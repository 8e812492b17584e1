/**
 * Per-kid verification counters: one row per (kid, instance, minute, result), incremented by
 * batched upserts that each instance flushes every few seconds.
 */
import type { UsageBucket, UsageIncrement, UsageTotal } from '../types.ts'
import { int, text } from './executor.ts'
import type { SqlExecutor, SqlParam } from './executor.ts'

const MINUTE_MS = 60_000
/** Rows per INSERT: 5 parameters each, far below both dialects' parameter limits. */
const CHUNK_ROWS = 200

/**
 * Sums the increments per counter first: PostgreSQL refuses an upsert that touches one row
 * twice, and sorted keys keep concurrent batches from deadlocking each other.
 */
function merge(rows: readonly UsageIncrement[]): UsageIncrement[] {
  const merged = new Map<string, UsageIncrement>()
  for (const row of rows) {
    if (!Number.isSafeInteger(row.count) || row.count < 0) throw new TypeError('usage count must be a non-negative integer')
    if (row.count === 0) continue
    const bucketStart = Math.floor(row.bucketStart / MINUTE_MS) * MINUTE_MS
    const key = JSON.stringify([row.kid, row.instanceId, bucketStart, row.result])
    const seen = merged.get(key)
    merged.set(key, { ...row, bucketStart, count: (seen?.count ?? 0) + row.count })
  }
  return [...merged.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, row]) => row)
}

export async function addUsage(q: SqlExecutor, rows: readonly UsageIncrement[]): Promise<void> {
  const merged = merge(rows)
  for (let i = 0; i < merged.length; i += CHUNK_ROWS) {
    const chunk = merged.slice(i, i + CHUNK_ROWS)
    const params: SqlParam[] = []
    const values = chunk.map((row) => {
      params.push(row.kid, row.instanceId, row.bucketStart, row.result, row.count)
      const n = params.length
      return `($${n - 4}, $${n - 3}, $${n - 2}, $${n - 1}, $${n})`
    })
    await q.run(
      `INSERT INTO usage_counters (kid, instance_id, bucket_start, result, count) VALUES ${values.join(', ')}
       ON CONFLICT (kid, instance_id, bucket_start, result) DO UPDATE SET count = usage_counters.count + excluded.count`,
      params,
    )
  }
}

export async function usageSince(q: SqlExecutor, sinceMs: number): Promise<UsageTotal[]> {
  const rows = await q.all(
    `SELECT kid, instance_id, result, CAST(SUM(count) AS BIGINT) AS n FROM usage_counters
     WHERE bucket_start >= $1 GROUP BY kid, instance_id, result ORDER BY kid, instance_id, result`,
    [Math.floor(sinceMs / MINUTE_MS) * MINUTE_MS],
  )
  return rows.map((row) => ({ kid: text(row, 'kid'), instanceId: text(row, 'instance_id'), result: text(row, 'result'), count: int(row, 'n') }))
}

export async function usageBuckets(q: SqlExecutor, sinceMs: number): Promise<UsageBucket[]> {
  const rows = await q.all(
    `SELECT kid, instance_id, bucket_start, result, count FROM usage_counters
     WHERE bucket_start >= $1 ORDER BY bucket_start, kid, instance_id, result`,
    [Math.floor(sinceMs / MINUTE_MS) * MINUTE_MS],
  )
  return rows.map((row) => ({
    kid: text(row, 'kid'), instanceId: text(row, 'instance_id'), bucketStart: int(row, 'bucket_start'), result: text(row, 'result'), count: int(row, 'count'),
  }))
}

export async function pruneUsage(q: SqlExecutor, before: number): Promise<number> {
  return q.run('DELETE FROM usage_counters WHERE bucket_start < $1', [before])
}
