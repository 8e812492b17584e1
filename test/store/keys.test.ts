import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { STORES } from './support/stores.ts'
import type { TestDatabase } from './support/stores.ts'
import { DAY, T0, auditEvent, chainHash, key } from './support/fixtures.ts'

for (const factory of STORES) {
  describe(`store keys (${factory.name})`, { skip: factory.skip }, () => {
    let db: TestDatabase
    before(async () => { db = await factory.create() })
    after(async () => { await db?.destroy() })

    it('starts at key-set version 0 with no keys', async () => {
      assert.equal(await db.store.getKeysetVersion(), 0)
      assert.deepEqual(await db.store.getKeyset(), { version: 0, keys: [] })
    })

    it('inserts a key, bumps the version and returns every column', async () => {
      const version = await db.store.insertKey({ ...key('a1', 'current'), activatedAt: T0 }, { expectedVersion: 0 })
      assert.equal(version, 1)
      assert.deepEqual(await db.store.listKeys('access'), [{
        kid: 'a1', purpose: 'access', alg: 'HS256', state: 'current', sealedMaterial: 'sealed:a1', createdAt: T0,
        activatedAt: T0, demotedAt: null, retireAfter: null, retiredAt: null, revokedAt: null, revokeReason: null,
      }])
    })

    it('refuses a stale expected version with ERR_CONFLICT and writes nothing', async () => {
      await assert.rejects(db.store.insertKey(key('stale', 'next'), { expectedVersion: 0 }), {
        name: 'RekeyError', code: 'ERR_CONFLICT', message: 'the key set changed since version 0; reload and retry',
      })
      assert.equal(await db.store.getKeysetVersion(), 1)
      assert.deepEqual((await db.store.listKeys()).map((k) => k.kid), ['a1'])
    })

    it('rotates: stages next, then demotes current and promotes next in one transition', async () => {
      await db.store.insertKey(key('a2', 'next', 'access', T0 + 1), { expectedVersion: 1 })
      const version = await db.store.transitionKeys({
        expectedVersion: 2,
        // Promotion listed first on purpose: the store demotes before it promotes.
        update: [
          { kid: 'a2', expectState: 'next', state: 'current', activatedAt: T0 + 2 },
          { kid: 'a1', expectState: 'current', state: 'previous', demotedAt: T0 + 2, retireAfter: T0 + 2 + DAY },
        ],
        audit: { event: auditEvent('rotate access'), computeHash: chainHash },
      })
      assert.equal(version, 3)
      const keyset = await db.store.getKeyset('access')
      assert.equal(keyset.version, 3)
      assert.deepEqual(keyset.keys.map((k) => [k.kid, k.state]), [['a1', 'previous'], ['a2', 'current']])
      assert.equal(keyset.keys[0]?.retireAfter, T0 + 2 + DAY)
      assert.equal(keyset.keys[1]?.activatedAt, T0 + 2)
      assert.equal((await db.store.listAudit()).at(-1)?.notes, 'rotate access')
    })

    it('fails the whole transition when a key is not in the expected state', async () => {
      await assert.rejects(db.store.transitionKeys({
        expectedVersion: 3,
        insert: [key('a3', 'next')],
        update: [{ kid: 'a1', expectState: 'current', state: 'retired', retiredAt: T0 }],
      }), { code: 'ERR_CONFLICT', message: 'key a1 is not in state current' })
      assert.equal(await db.store.getKeysetVersion(), 3)
      assert.equal((await db.store.listKeys()).some((k) => k.kid === 'a3'), false)
    })

    it('fails on an unknown kid and on a taken kid', async () => {
      await assert.rejects(db.store.transitionKeys({ expectedVersion: 3, update: [{ kid: 'ghost', state: 'revoked' }] }),
        { code: 'ERR_CONFLICT', message: 'key ghost does not exist' })
      await assert.rejects(db.store.insertKey(key('a1', 'next'), { expectedVersion: 3 }),
        { code: 'ERR_CONFLICT', message: 'a key with this kid already exists' })
      assert.equal(await db.store.getKeysetVersion(), 3)
    })

    it('refuses a second current key for one purpose', async () => {
      await assert.rejects(db.store.insertKey(key('a4', 'current'), { expectedVersion: 3 }),
        { code: 'ERR_CONFLICT', message: 'a purpose can have only one current key' })
      // Another purpose has its own current key.
      assert.equal(await db.store.insertKey(key('r1', 'current', 'refresh'), { expectedVersion: 3 }), 4)
    })

    it('revokes a key with its reason and re-seals material', async () => {
      const version = await db.store.transitionKeys({
        expectedVersion: 4,
        update: [
          { kid: 'a1', state: 'revoked', revokedAt: T0 + 5, revokeReason: 'leaked' },
          { kid: 'a2', sealedMaterial: 'resealed:a2' },
        ],
      })
      assert.equal(version, 5)
      const [a1, a2] = await db.store.listKeys('access')
      assert.deepEqual([a1?.state, a1?.revokedAt, a1?.revokeReason], ['revoked', T0 + 5, 'leaked'])
      assert.equal(a2?.sealedMaterial, 'resealed:a2')
      assert.equal(a2?.state, 'current')
    })

    it('emergency: revokes current and inserts its replacement as current in one step', async () => {
      const version = await db.store.transitionKeys({
        expectedVersion: 5,
        insert: [{ ...key('a9', 'current', 'access', T0 + 9), activatedAt: T0 + 9 }],
        update: [{ kid: 'a2', expectState: 'current', state: 'revoked', revokedAt: T0 + 9, revokeReason: 'emergency' }],
      })
      assert.equal(version, 6)
      assert.deepEqual((await db.store.listKeys('access')).filter((k) => k.state === 'current').map((k) => k.kid), ['a9'])
    })

    it('writes no change when its audit row cannot be computed (fail closed)', async () => {
      await assert.rejects(db.store.transitionKeys({
        expectedVersion: 6,
        update: [{ kid: 'a9', state: 'previous' }],
        audit: { event: auditEvent('never'), computeHash: () => { throw new Error('no audit key') } },
      }), /no audit key/)
      assert.equal(await db.store.getKeysetVersion(), 6)
      assert.equal((await db.store.listKeys('access')).find((k) => k.kid === 'a9')?.state, 'current')
      assert.equal((await db.store.listAudit()).some((row) => row.notes === 'never'), false)
    })

    it('lists keys of every purpose ordered by creation', async () => {
      assert.deepEqual((await db.store.listKeys()).map((k) => k.kid), ['a1', 'r1', 'a2', 'a9'])
      assert.deepEqual((await db.store.listKeys('refresh')).map((k) => k.kid), ['r1'])
      assert.deepEqual(await db.store.listKeys('nothing'), [])
    })
  })
}
