/**
 * Bounded tables: the lease holder's pruning, in batches, on both dialects. Ended families go
 * (after a day) with their tokens; used tokens go once past any overlap window, successor
 * blobs with them; live tokens, live families and recent heartbeats stay. A used token whose
 * row was pruned is still recognised as a reuse through the family its token names (`sid`).
 * The one-round-trip refresh (PostgreSQL) keeps 30 concurrent refreshes of one token exact.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import pg from 'pg'
import {
  PRUNE_FAMILIES_AFTER_MS, PRUNE_INSTANCES_AFTER_MS, PRUNE_USED_AFTER_MS, pruneSessions,
} from '../../src/service/sessions/session-maintenance.ts'
import type { Store } from '../../src/store/store.ts'
import { STORES, type TestDatabase } from './support/stores.ts'
import { DAY, MINUTE, T0, newUser, rotate, session, sha256 } from './support/fixtures.ts'

const NOW = T0 + 10 * DAY

/** A session created at `createdAt` whose family and first token expire at `expiresAt`. */
function fam(userId: string, token: string, createdAt: number, expiresAt: number): ReturnType<typeof session> {
  const s = session(userId, token, 'kid-r1', createdAt)
  return { ...s, expiresAt, token: { ...s.token!, expiresAt } }
}

for (const factory of STORES) {
  describe(`session pruning (${factory.name})`, { skip: factory.skip }, () => {
    let db: TestDatabase
    let store: Store
    before(async () => {
      db = await factory.create()
      store = db.store
    })
    after(async () => { await db?.destroy() })

    it('prunes ended families, used tokens and old heartbeats in batches; keeps what is live', async () => {
      const userId = await newUser(store)
      const long = PRUNE_FAMILIES_AFTER_MS + DAY
      // 5 families that expired long ago, 4 revoked long ago, 3 revoked just now (kept a day).
      for (let i = 0; i < 5; i++) await store.createFamily(fam(userId, `exp-${i}`, NOW - long - DAY, NOW - long))
      const revokedOld: string[] = []
      for (let i = 0; i < 4; i++) {
        const s = fam(userId, `rev-${i}`, NOW - long, NOW + DAY)
        await store.createFamily(s)
        revokedOld.push(s.familyId)
      }
      for (const id of revokedOld) await store.revokeFamily(id, 'logout', NOW - long)
      const recent = fam(userId, 'rev-recent', NOW - MINUTE, NOW + DAY)
      await store.createFamily(recent)
      await store.revokeFamily(recent.familyId, 'logout', NOW - MINUTE)
      // One live family with a chain: t0 used long ago, t1 used within the window, t2 live.
      const live = fam(userId, 'chain-0', NOW - 2 * DAY, NOW + DAY)
      await store.createFamily(live)
      assert.equal((await rotate(store, 'chain-0', 'chain-1', NOW - PRUNE_USED_AFTER_MS - MINUTE)).outcome, 'rotated')
      assert.equal((await rotate(store, 'chain-1', 'chain-2', NOW - MINUTE)).outcome, 'rotated')
      await store.heartbeat({ instanceId: 'gone', hostname: 'h', pid: 1, keysetVersion: 0, startedAt: 0, lastSeen: NOW - PRUNE_INSTANCES_AFTER_MS - 1 })
      await store.heartbeat({ instanceId: 'here', hostname: 'h', pid: 2, keysetVersion: 0, startedAt: 0, lastSeen: NOW - 1000 })

      const totals = await pruneSessions(store, NOW, 10_000, 2)
      assert.equal(totals.families, 9, 'the 5 expired and the 4 revoked long ago')
      assert.equal(totals.tokens, 9 + 1, 'their tokens and the one used past the window')
      assert.equal(totals.instances, 1)
      assert.ok(totals.batches >= 3, `at most 2 rows of each kind per batch (${totals.batches} batches)`)

      assert.equal(await store.getRefreshToken(sha256('exp-0')), null)
      assert.equal(await store.getFamilyByTokenHash(sha256('rev-0')), null)
      assert.equal((await store.getFamilyByTokenHash(sha256('rev-recent')))?.revokeReason, 'logout', 'revoked a minute ago: kept')
      assert.equal(await store.getRefreshToken(sha256('chain-0')), null, 'used past the overlap window: pruned with its blob')
      assert.equal((await store.getRefreshToken(sha256('chain-1')))?.successorBlob, 'blob-of-chain-2', 'inside the window: kept')
      assert.equal((await store.getRefreshToken(sha256('chain-2')))?.usedAt, null, 'the live token stays')
      assert.deepEqual((await store.listInstances(0)).map((i) => i.instanceId), ['here'])
      assert.deepEqual(await pruneSessions(store, NOW, 10_000, 2), { families: 0, tokens: 0, instances: 0, batches: 1 }, 'nothing left to prune')

      // The pruned chain-0 comes back: unknown hash, but its token names a live family: reuse.
      assert.deepEqual(await rotate(store, 'chain-0', 'stolen-next', NOW), { outcome: 'invalid', reason: 'unknown' }, 'without sid: unknown')
      const reused = await rotate(store, 'chain-0', 'stolen-next', NOW, live.familyId)
      assert.equal(reused.outcome, 'reuse')
      assert.equal((await store.getFamilyByTokenHash(sha256('chain-2')))?.revokeReason, 'reuse', 'the whole family ended')
      assert.equal(await store.getRefreshToken(sha256('stolen-next')), null, 'no successor issued')
    })

    it('30 concurrent refreshes of one token: one family, one successor, the rest get the same pair', async () => {
      const userId = await newUser(store)
      const s = fam(userId, 'hot', NOW, NOW + DAY)
      await store.createFamily(s)
      const others = await Promise.all([1, 2].map(() => db.open()))
      const stores = [store, ...others]
      const results = await Promise.all(Array.from({ length: 30 }, (_, i) => rotate(stores[i % stores.length] as Store, 'hot', `hot-next-${i}`, NOW + 1)))
      assert.equal(results.filter((r) => r.outcome === 'rotated').length, 1)
      const overlaps = results.filter((r) => r.outcome === 'overlap')
      assert.equal(overlaps.length, 29)
      const stored = await store.getRefreshToken(sha256('hot'))
      for (const r of overlaps) if (r.outcome === 'overlap') assert.equal(r.successorHash, stored?.successorHash)
      const successors = (await Promise.all(results.map((_, i) => store.getRefreshToken(sha256(`hot-next-${i}`))))).filter((t) => t !== null)
      assert.equal(successors.length, 1, 'exactly one successor row')
      assert.equal(successors[0]?.familyId, s.familyId)
      assert.equal(successors[0]?.tokenHash, stored?.successorHash)
    })

    if (factory.name === 'postgres') {
      it('a refresh is one statement, one round trip (PostgreSQL)', async () => {
        const userId = await newUser(store)
        await store.createFamily(fam(userId, 'trip-0', NOW, NOW + DAY))
        const sent: string[] = []
        const original = pg.Client.prototype.query
        // Counts what the store sends, at the driver; restored below.
        pg.Client.prototype.query = function (this: pg.Client, ...args: unknown[]) {
          const first = args[0]
          sent.push(typeof first === 'string' ? first : String((first as { text?: string })?.text ?? first))
          return (original as (...a: unknown[]) => unknown).apply(this, args)
        } as typeof original
        try {
          assert.equal((await rotate(store, 'trip-0', 'trip-1', NOW + 1)).outcome, 'rotated')
          assert.equal(sent.length, 1, `one query: ${sent.join(' | ')}`)
          assert.match(sent[0] ?? '', /rekey_rotate_token/)
          sent.length = 0
          assert.equal((await rotate(store, 'trip-0', 'trip-1b', NOW + 2)).outcome, 'overlap')
          assert.equal(sent.length, 1, 'the overlap answer too')
        } finally {
          pg.Client.prototype.query = original
        }
      })
    }
  })
}
