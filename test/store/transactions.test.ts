import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { STORES } from './support/stores.ts'
import type { TestDatabase } from './support/stores.ts'
import { T0, auditEvent, chainHash, key, newUser, session, sha256 } from './support/fixtures.ts'

for (const factory of STORES) {
  describe(`store transactions (${factory.name})`, { skip: factory.skip }, () => {
    let db: TestDatabase
    before(async () => { db = await factory.create() })
    after(async () => { await db?.destroy() })

    it('commits an emergency as one unit: keys, sessions, setting and audit row', async () => {
      const userId = await newUser(db.store)
      await db.store.createFamily(session(userId, 'tx-1'))
      await db.store.insertKey(key('tx-old', 'current'), { expectedVersion: 0 })
      const result = await db.store.transaction(async (tx) => {
        const version = await tx.transitionKeys({
          expectedVersion: await tx.getKeysetVersion(),
          insert: [key('tx-new', 'current')],
          update: [{ kid: 'tx-old', state: 'revoked', revokedAt: T0, revokeReason: 'emergency' }],
        })
        const ended = await tx.revokeAllSessions('emergency', T0)
        await tx.setSetting('not_before', String(T0))
        await tx.appendAudit(auditEvent('emergency'), chainHash)
        return { version, ended }
      })
      assert.deepEqual(result, { version: 2, ended: 1 })
      assert.equal(await db.store.getSetting('not_before'), String(T0))
      assert.equal((await db.store.getFamilyByTokenHash(sha256('tx-1')))?.revokeReason, 'emergency')
      assert.deepEqual((await db.store.listAudit()).map((r) => r.notes), ['emergency'])
    })

    it('rolls everything back when the function throws', async () => {
      const userId = await newUser(db.store)
      await db.store.createFamily(session(userId, 'tx-2'))
      await assert.rejects(db.store.transaction(async (tx) => {
        await tx.revokeAllForUser(userId, 'logout-all', T0)
        await tx.bumpTokenVersion(userId)
        await tx.setSetting('half_done', 'yes')
        await tx.appendAudit(auditEvent('half'), chainHash)
        throw new Error('crash in the middle')
      }), /crash in the middle/)
      assert.equal((await db.store.getFamilyByTokenHash(sha256('tx-2')))?.revokedAt, null)
      assert.equal((await db.store.getUserById(userId))?.tokenVersion, 0)
      assert.equal(await db.store.getSetting('half_done'), null)
      assert.equal((await db.store.listAudit()).some((r) => r.notes === 'half'), false)
    })

    it('rolls back when one step conflicts, and reports ERR_CONFLICT', async () => {
      await assert.rejects(db.store.transaction(async (tx) => {
        await tx.setSetting('conflicted', 'yes')
        await tx.insertKey(key('tx-late', 'next'), { expectedVersion: 0 })
      }), { code: 'ERR_CONFLICT' })
      assert.equal(await db.store.getSetting('conflicted'), null)
    })

    it('reads its own writes inside the transaction', async () => {
      await db.store.transaction(async (tx) => {
        await tx.setSetting('visible', 'inside')
        assert.equal(await tx.getSetting('visible'), 'inside')
        await tx.setSetting('visible', null)
      })
      assert.equal(await db.store.getSetting('visible'), null)
    })

    it('refuses a call on the store itself from inside its transaction, instead of deadlocking', async () => {
      await assert.rejects(db.store.transaction(async () => {
        await db.store.getSetting('anything')
      }), (err: Error) => err instanceof TypeError && /tx argument/.test(err.message))
    })

    it('refuses a transaction object used after it ended', async () => {
      let leaked: { getSetting(name: string): Promise<string | null> } | undefined
      await db.store.transaction(async (tx) => { leaked = tx })
      await assert.rejects(leaked!.getSetting('x'), TypeError)
    })

    it('keeps serving calls made while another transaction is open', async () => {
      let release: () => void = () => {}
      const gate = new Promise<void>((resolve) => { release = resolve })
      const slow = db.store.transaction(async (tx) => {
        await tx.setSetting('slow', 'done')
        await gate
      })
      const meanwhile = db.store.setSetting('meanwhile', 'done')
      setTimeout(release, 50)
      await Promise.all([slow, meanwhile])
      assert.equal(await db.store.getSetting('slow'), 'done')
      assert.equal(await db.store.getSetting('meanwhile'), 'done')
    })
  })
}
