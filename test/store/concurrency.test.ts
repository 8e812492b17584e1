/**
 * Race-safety across instances: several stores on one database (SQLite connections on one
 * file, PostgreSQL pools) and, for SQLite, worker threads that contend on the file lock itself.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { STORES, sqliteFactory } from './support/stores.ts'
import type { TestDatabase } from './support/stores.ts'
import { DAY, T0, auditEvent, chainHash, key, newUser, session, sha256 } from './support/fixtures.ts'
import { runInThreads } from './support/threads.ts'
import type { AuditRecord } from '../../src/store/types.ts'
import type { RotateResult, Store } from '../../src/store/store.ts'

const INSTANCES = 6

/** Checks that rows form one linear chain: seq 1..n, each linked to the previous hash. */
function assertLinearChain(rows: readonly AuditRecord[]): void {
  rows.forEach((row, i) => {
    assert.equal(row.seq, i + 1, 'seq has no gaps')
    assert.equal(row.prevHash, i === 0 ? null : rows[i - 1]?.hash, `row ${row.seq} links to the previous row`)
    assert.equal(row.hash, chainHash(row.prevHash, row), `row ${row.seq} hash matches its content`)
  })
  assert.equal(new Set(rows.map((row) => row.prevHash)).size, rows.length, 'no two rows share a prev_hash')
}

for (const factory of STORES) {
  describe(`store concurrency across instances (${factory.name})`, { skip: factory.skip }, () => {
    let db: TestDatabase
    let instances: Store[]
    before(async () => {
      db = await factory.create()
      instances = [db.store]
      for (let i = 1; i < INSTANCES; i++) instances.push(await db.open())
    })
    after(async () => { await db?.destroy() })

    it('rotates a token exactly once when every instance rotates it at the same time', async () => {
      const userId = await newUser(db.store)
      const s = session(userId, 'race-1')
      await db.store.createFamily(s)
      const calls = instances.flatMap((store, i) => [0, 1].map((j) => store.rotateToken({
        oldHash: sha256('race-1'),
        next: { tokenHash: sha256(`race-next-${i}-${j}`), kid: 'kid-r1', issuedAt: T0, expiresAt: T0 + DAY },
        successorBlob: `blob-${i}-${j}`,
        now: T0,
        overlapMs: 10_000,
      })))
      const results: RotateResult[] = await Promise.all(calls)
      const rotated = results.filter((r) => r.outcome === 'rotated')
      assert.equal(rotated.length, 1, 'exactly one call rotated')
      const stored = await db.store.getRefreshToken(sha256('race-1'))
      for (const r of results) {
        if (r.outcome === 'rotated') continue
        assert.equal(r.outcome, 'overlap')
        if (r.outcome === 'overlap') {
          assert.equal(r.successorHash, stored?.successorHash)
          assert.equal(r.successorBlob, stored?.successorBlob)
        }
      }
      const successors = await Promise.all(results.map((_, k) => db.store.getRefreshToken(sha256(`race-next-${Math.floor(k / 2)}-${k % 2}`))))
      assert.equal(successors.filter((t) => t !== null).length, 1, 'exactly one successor was inserted')
    })

    it('serializes audit appends from every instance into one linear chain', async () => {
      const fresh = await factory.create()
      try {
        const peers = [fresh.store, await fresh.open(), await fresh.open()]
        await Promise.all(peers.flatMap((store, i) =>
          Array.from({ length: 10 }, (_, j) => store.appendAudit(auditEvent(`instance ${i} #${j}`), chainHash))))
        const rows = await fresh.store.listAudit()
        assert.equal(rows.length, 30)
        assertLinearChain(rows)
      } finally {
        await fresh.destroy()
      }
    })

    it('lets exactly one of two operators win a key rotation from the same version', async () => {
      const version = await db.store.getKeysetVersion()
      const outcomes = await Promise.allSettled(instances.slice(0, 2).map((store, i) =>
        store.insertKey(key(`race-kid-${i}`, 'next'), { expectedVersion: version })))
      assert.equal(outcomes.filter((o) => o.status === 'fulfilled').length, 1)
      const loser = outcomes.find((o) => o.status === 'rejected')
      assert.equal((loser as PromiseRejectedResult).reason.code, 'ERR_CONFLICT')
      assert.equal(await db.store.getKeysetVersion(), version + 1)
      assert.equal((await db.store.listKeys()).filter((k) => k.kid.startsWith('race-kid-')).length, 1)
    })

    it('grants a lease to exactly one instance at a time', async () => {
      const won = await Promise.all(instances.map((store, i) => store.tryAcquireLease('race-lease', `holder-${i}`, 30_000, T0)))
      assert.equal(won.filter(Boolean).length, 1)
    })

    it('records each reminder once across instances', async () => {
      await db.store.upsertSecret({ name: 'RACE_SECRET', kind: 'manual', cadenceDays: 90 })
      const first = await Promise.all(instances.map((store) => store.markReminderSent('RACE_SECRET', T0 + DAY, 'T-7d')))
      assert.equal(first.filter(Boolean).length, 1)
    })
  })
}

describe('store concurrency across threads (sqlite file locking)', () => {
  let db: TestDatabase
  before(async () => { db = await sqliteFactory.create() })
  after(async () => { await db?.destroy() })

  it('rotates a token exactly once when threads with their own connections race', async () => {
    const userId = await newUser(db.store)
    await db.store.createFamily(session(userId, 'thread-race'))
    const results = await runInThreads(Array.from({ length: 4 }, (_, id) => ({ path: db.location, id, op: 'rotate' as const, oldToken: 'thread-race', now: T0 })))
    const outcomes = results.map((r) => (r as RotateResult).outcome).sort()
    assert.deepEqual(outcomes, ['overlap', 'overlap', 'overlap', 'rotated'])
  })

  it('keeps the audit chain linear when threads append at the same time', async () => {
    await runInThreads(Array.from({ length: 3 }, (_, id) => ({ path: db.location, id, op: 'audit' as const, count: 15 })))
    const rows = await db.store.listAudit()
    assert.equal(rows.length, 45)
    assertLinearChain(rows)
  })
})
