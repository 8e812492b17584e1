import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { STORES } from './support/stores.ts'
import type { TestDatabase } from './support/stores.ts'
import { MINUTE, T0, auditEvent, chainHash } from './support/fixtures.ts'
import type { AuditHashInput } from '../../src/store/types.ts'

for (const factory of STORES) {
  describe(`store audit (${factory.name})`, { skip: factory.skip }, () => {
    let db: TestDatabase
    before(async () => { db = await factory.create() })
    after(async () => { await db?.destroy() })

    it('starts the chain at seq 1 with no previous hash, handing computeHash the full row', async () => {
      const seen: Array<[string | null, AuditHashInput]> = []
      const row = await db.store.appendAudit(
        { at: T0, secret: 'access', operator: 'alice', method: 'rotate', notes: 'first', requestId: 'req-1' },
        (prev, input) => { seen.push([prev, input]); return chainHash(prev, input) },
      )
      assert.deepEqual(seen, [[null, { seq: 1, at: T0, secret: 'access', operator: 'alice', method: 'rotate', notes: 'first', requestId: 'req-1' }]])
      assert.deepEqual(row, {
        seq: 1, at: T0, secret: 'access', operator: 'alice', method: 'rotate', notes: 'first', requestId: 'req-1',
        prevHash: null, hash: chainHash(null, row),
      })
    })

    it('links each row to the previous one', async () => {
      const second = await db.store.appendAudit(auditEvent('second', T0 + MINUTE), chainHash)
      const third = await db.store.appendAudit(auditEvent('third', T0 + 2 * MINUTE), chainHash)
      const rows = await db.store.listAudit()
      assert.deepEqual(rows.map((r) => r.seq), [1, 2, 3])
      assert.equal(second.prevHash, rows[0]?.hash)
      assert.equal(third.prevHash, second.hash)
      assert.deepEqual(rows[2], third)
    })

    it('filters by time, pages by seq and limits, always in seq order', async () => {
      assert.deepEqual((await db.store.listAudit({ since: T0 + MINUTE })).map((r) => r.notes), ['second', 'third'])
      assert.deepEqual((await db.store.listAudit({ afterSeq: 1, limit: 1 })).map((r) => r.notes), ['second'])
      assert.deepEqual((await db.store.listAudit({ limit: 2 })).map((r) => r.seq), [1, 2])
      assert.deepEqual(await db.store.listAudit({ since: T0 + 10 * MINUTE }), [])
    })

    it('appends nothing when computeHash throws, and refuses an empty hash', async () => {
      await assert.rejects(db.store.appendAudit(auditEvent('boom'), () => { throw new Error('hmac key missing') }), /hmac key missing/)
      await assert.rejects(db.store.appendAudit(auditEvent('empty'), () => ''), TypeError)
      assert.equal((await db.store.listAudit()).length, 3)
      const next = await db.store.appendAudit(auditEvent('after failures'), chainHash)
      assert.equal(next.seq, 4)
    })

    it('records a null request id and keeps notes verbatim', async () => {
      const row = await db.store.appendAudit({ ...auditEvent('multi\nline | with pipes'), requestId: null }, chainHash)
      const [stored] = await db.store.listAudit({ afterSeq: row.seq - 1 })
      assert.equal(stored?.requestId, null)
      assert.equal(stored?.notes, 'multi\nline | with pipes')
    })
  })
}
