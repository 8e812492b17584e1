import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { STORES } from './support/stores.ts'
import type { TestDatabase } from './support/stores.ts'
import { MINUTE, T0, auditEvent, chainHash } from './support/fixtures.ts'

for (const factory of STORES) {
  describe(`store usage, instances, leases, settings (${factory.name})`, { skip: factory.skip }, () => {
    let db: TestDatabase
    before(async () => { db = await factory.create() })
    after(async () => { await db?.destroy() })

    it('adds usage per kid, instance, minute and result, summing repeats', async () => {
      await db.store.addUsage([
        { kid: 'k1', instanceId: 'i1', bucketStart: T0 + 5_000, result: 'ok', count: 3 },
        { kid: 'k1', instanceId: 'i1', bucketStart: T0 + 59_000, result: 'ok', count: 2 }, // same minute
        { kid: 'k1', instanceId: 'i1', bucketStart: T0, result: 'ERR_TOKEN_EXPIRED', count: 1 },
        { kid: 'k2', instanceId: 'i2', bucketStart: T0 + MINUTE, result: 'ok', count: 7 },
        { kid: 'k2', instanceId: 'i2', bucketStart: T0 + MINUTE, result: 'ok', count: 0 },
      ])
      await db.store.addUsage([{ kid: 'k1', instanceId: 'i1', bucketStart: T0 + 2 * MINUTE, result: 'ok', count: 10 }])
      await db.store.addUsage([{ kid: 'k1', instanceId: 'i1', bucketStart: T0, result: 'ok', count: 1 }]) // a later flush
      await db.store.addUsage([])
      assert.deepEqual(await db.store.usageSince(T0), [
        { kid: 'k1', instanceId: 'i1', result: 'ERR_TOKEN_EXPIRED', count: 1 },
        { kid: 'k1', instanceId: 'i1', result: 'ok', count: 16 },
        { kid: 'k2', instanceId: 'i2', result: 'ok', count: 7 },
      ])
      assert.deepEqual(await db.store.usageSince(T0 + MINUTE + 30_000), [
        { kid: 'k1', instanceId: 'i1', result: 'ok', count: 10 },
        { kid: 'k2', instanceId: 'i2', result: 'ok', count: 7 },
      ])
    })

    it('adds a large batch in one call', async () => {
      const rows = Array.from({ length: 450 }, (_, i) => ({ kid: `bulk-${i % 3}`, instanceId: 'i9', bucketStart: T0 + 10 * MINUTE + i * MINUTE, result: 'ok', count: 1 }))
      await db.store.addUsage(rows)
      const totals = (await db.store.usageSince(T0 + 10 * MINUTE)).filter((r) => r.kid.startsWith('bulk-'))
      assert.deepEqual(totals.map((r) => r.count), [150, 150, 150])
    })

    it('refuses negative or fractional counts', async () => {
      await assert.rejects(db.store.addUsage([{ kid: 'k', instanceId: 'i', bucketStart: T0, result: 'ok', count: -1 }]), TypeError)
      await assert.rejects(db.store.addUsage([{ kid: 'k', instanceId: 'i', bucketStart: T0, result: 'ok', count: 1.5 }]), TypeError)
    })

    it('prunes old usage buckets', async () => {
      assert.equal(await db.store.pruneUsage(T0 + MINUTE), 2)
      assert.equal((await db.store.usageSince(0)).some((r) => r.result === 'ERR_TOKEN_EXPIRED'), false)
    })

    it('records heartbeats, refreshes them, lists live instances and removes one', async () => {
      const base = { hostname: 'host-a', pid: 101, keysetVersion: 3, startedAt: T0 }
      await db.store.heartbeat({ ...base, instanceId: 'inst-a', lastSeen: T0 + 1000 })
      await db.store.heartbeat({ ...base, instanceId: 'inst-b', hostname: 'host-b', lastSeen: T0 })
      await db.store.heartbeat({ ...base, instanceId: 'inst-a', keysetVersion: 4, lastSeen: T0 + 5000 })
      assert.deepEqual(await db.store.listInstances(T0 + 2000), [{ ...base, instanceId: 'inst-a', keysetVersion: 4, lastSeen: T0 + 5000 }])
      assert.deepEqual((await db.store.listInstances(T0)).map((i) => i.instanceId), ['inst-a', 'inst-b'])
      await db.store.removeInstance('inst-a')
      assert.deepEqual((await db.store.listInstances(0)).map((i) => i.instanceId), ['inst-b'])
    })

    it('holds a lease until it expires or is released, and lets its holder renew it', async () => {
      assert.equal(await db.store.tryAcquireLease('scheduler', 'a', 30_000, T0), true)
      assert.equal(await db.store.tryAcquireLease('scheduler', 'b', 30_000, T0 + 29_999), false)
      assert.equal(await db.store.tryAcquireLease('scheduler', 'a', 30_000, T0 + 20_000), true, 'renewed until T0 + 50 s')
      assert.equal(await db.store.tryAcquireLease('scheduler', 'b', 30_000, T0 + 49_999), false)
      assert.equal(await db.store.tryAcquireLease('scheduler', 'b', 30_000, T0 + 50_000), true, 'expired lease taken over')
      assert.equal(await db.store.releaseLease('scheduler', 'a'), false, 'a no longer holds it')
      assert.equal(await db.store.releaseLease('scheduler', 'b'), true)
      assert.equal(await db.store.tryAcquireLease('scheduler', 'c', 30_000, T0 + 50_001), true)
      assert.equal(await db.store.tryAcquireLease('other', 'b', 30_000, T0 + 50_001), true, 'leases are per name')
    })

    it('sets, overwrites, deletes and audits settings', async () => {
      assert.equal(await db.store.getSetting('not_before'), null)
      await db.store.setSetting('not_before', String(T0))
      await db.store.setSetting('not_before', String(T0 + 1), { audit: { event: auditEvent('emergency not-before'), computeHash: chainHash } })
      assert.equal(await db.store.getSetting('not_before'), String(T0 + 1))
      assert.equal((await db.store.listAudit()).at(-1)?.notes, 'emergency not-before')
      await db.store.setSetting('not_before', null)
      assert.equal(await db.store.getSetting('not_before'), null)
    })

    it('answers ping', async () => {
      await db.store.ping()
    })
  })
}
