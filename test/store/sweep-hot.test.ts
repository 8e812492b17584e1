/**
 * The emergency's sweep on PostgreSQL writes no index entries: its updates of `revoked_at` are
 * HOT (no index names the column, pages keep room for the new row versions), and it goes by
 * heap pages, two workers on disjoint ranges, so every live family it must end is ended,
 * exactly once, and no other.
 */
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { runSessionSweep } from '../../src/service/sessions/session-maintenance.ts'
import { openStore } from '../../src/store/open.ts'
import { POSTGRES_URL, REQUIRE_POSTGRES, adminQuery, freshSchema } from './support/stores.ts'

const LIVE = 12_000
const HOUR = 3_600_000

describe('emergency sweep on PostgreSQL: HOT updates by heap pages', { skip: POSTGRES_URL === '' && !REQUIRE_POSTGRES ? 'REKEY_TEST_POSTGRES_URL is not set' : false }, () => {
  let schema: string
  before(async () => {
    schema = freshSchema()
    await adminQuery(`CREATE SCHEMA ${schema}`)
  })
  after(async () => {
    await adminQuery(`DROP SCHEMA IF EXISTS ${schema} CASCADE`)
  })

  test('no index names revoked_at; the sweep ends every live family, its updates HOT', { timeout: 60_000 }, async () => {
    const store = await openStore(POSTGRES_URL, { schema, max: 2 })
    const indexes = await adminQuery('SELECT indexdef FROM pg_indexes WHERE schemaname = $1 AND tablename = $2', [schema, 'session_families'])
    assert.deepEqual(indexes.rows.filter((r: { indexdef: string }) => /revoked_at|revoke_reason/.test(r.indexdef)), [])
    const now = Date.now()
    await adminQuery(`INSERT INTO ${schema}.users (id, email, password_hash, created_at) VALUES ('u1', 'u1@example.test', 'x', $1)`, [now])
    // Live, expired, already revoked (by a logout) and created after the emergency: only the live ones end.
    await adminQuery(`INSERT INTO ${schema}.session_families (id, user_id, created_at, expires_at, revoked_at, listed_at, revoke_reason)
      SELECT 'f' || g, 'u1', $1::bigint - 1000,
             CASE WHEN g % 4 = 1 THEN $1::bigint - ${HOUR} ELSE $1::bigint + ${HOUR} END,
             CASE WHEN g % 4 = 2 THEN $1::bigint - 500 END, CASE WHEN g % 4 = 2 THEN $1::bigint - 500 END,
             CASE WHEN g % 4 = 2 THEN 'logout' END
      FROM generate_series(1, $2::int) g`, [now, LIVE * 2])
    await adminQuery(`INSERT INTO ${schema}.session_families (id, user_id, created_at, expires_at) VALUES ('later', 'u1', $1::bigint + 10, $1::bigint + ${HOUR})`, [now])
    const live = LIVE * 2 / 2

    let batches = 0
    const ended = await runSessionSweep(store, { at: now, reason: 'emergency' }, { now: () => now, batchSize: 500, workers: 2, onProgress: (p) => { batches = p.batches } })
    assert.ok(batches > 10, `small batches, in two page ranges (${batches})`)
    assert.equal(ended, live, 'exactly the live families created before the emergency')
    await store.close() // the backends exit and flush their statistics

    const left = await adminQuery(`SELECT COUNT(*)::int AS n FROM ${schema}.session_families WHERE revoked_at IS NULL AND expires_at > $1`, [now])
    assert.equal((left.rows[0] as { n: number }).n, 1, 'only the family created after the emergency is left')
    const logouts = await adminQuery(`SELECT COUNT(*)::int AS n FROM ${schema}.session_families WHERE revoke_reason = 'logout' AND revoked_at = $1::bigint - 500`, [now])
    assert.equal((logouts.rows[0] as { n: number }).n, LIVE * 2 / 4, 'families ended earlier keep their time and reason')
    let hot = 0
    for (let i = 0; i < 50 && hot === 0; i++) {
      const stats = await adminQuery('SELECT n_tup_hot_upd::int AS hot FROM pg_stat_user_tables WHERE schemaname = $1 AND relname = $2', [schema, 'session_families'])
      hot = (stats.rows[0] as { hot: number }).hot
      if (hot === 0) await new Promise((resolve) => setTimeout(resolve, 100))
    }
    // fillfactor 70 leaves room on each page for about 40 % of its rows' new versions.
    assert.ok(hot >= live * 0.3, `HOT updates: ${hot} of ${live}`)
  })
})
