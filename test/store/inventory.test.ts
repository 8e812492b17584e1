import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { STORES } from './support/stores.ts'
import type { TestDatabase } from './support/stores.ts'
import { DAY, T0, auditEvent, chainHash } from './support/fixtures.ts'

for (const factory of STORES) {
  describe(`store secret inventory (${factory.name})`, { skip: factory.skip }, () => {
    let db: TestDatabase
    before(async () => { db = await factory.create() })
    after(async () => { await db?.destroy() })

    it('adds a secret never rotated, with no reminders sent', async () => {
      const secret = await db.store.upsertSecret({ name: 'SMTP_PASSWORD', kind: 'manual', cadenceDays: 180, notes: 'mail provider' })
      assert.deepEqual(secret, {
        name: 'SMTP_PASSWORD', kind: 'manual', cadenceDays: 180, lastRotatedAt: null, lastMethod: null,
        notes: 'mail provider', reminders: { dueAt: null, stages: [] },
      })
      assert.deepEqual(await db.store.getSecret('SMTP_PASSWORD'), secret)
      assert.equal(await db.store.getSecret('UNKNOWN'), null)
    })

    it('updates cadence and kind, keeps notes unless given, keeps the rotation history', async () => {
      await db.store.markRotated({ name: 'SMTP_PASSWORD', at: T0, method: 'manual' })
      const updated = await db.store.upsertSecret({ name: 'SMTP_PASSWORD', kind: 'smtp', cadenceDays: 90 })
      assert.equal(updated.cadenceDays, 90)
      assert.equal(updated.kind, 'smtp')
      assert.equal(updated.notes, 'mail provider')
      assert.equal(updated.lastRotatedAt, T0)
      assert.equal((await db.store.upsertSecret({ name: 'SMTP_PASSWORD', kind: 'smtp', cadenceDays: 90, notes: null })).notes, null)
    })

    it('records a rotation with its audit row and clears the reminders sent', async () => {
      assert.equal(await db.store.markReminderSent('SMTP_PASSWORD', T0 + 90 * DAY, 'T-7d'), true)
      const audit = { event: auditEvent('record SMTP_PASSWORD'), computeHash: chainHash }
      const rotated = await db.store.markRotated({ name: 'SMTP_PASSWORD', at: T0 + 85 * DAY, method: 'provider console', notes: 'new app password' }, { audit })
      assert.equal(rotated?.lastRotatedAt, T0 + 85 * DAY)
      assert.equal(rotated?.lastMethod, 'provider console')
      assert.equal(rotated?.notes, 'new app password')
      assert.deepEqual(rotated?.reminders, { dueAt: null, stages: [] })
      assert.equal((await db.store.listAudit()).at(-1)?.notes, 'record SMTP_PASSWORD')
      assert.equal(await db.store.markRotated({ name: 'UNKNOWN', at: T0, method: 'x' }, { audit }), null)
      assert.equal((await db.store.listAudit()).length, 1, 'no audit row for an unknown secret')
    })

    it('sends each reminder stage once per due date, and again for a new due date', async () => {
      await db.store.upsertSecret({ name: 'METRICS_AUTH_TOKEN', kind: 'token', cadenceDays: 180 })
      const due = T0 + 180 * DAY
      assert.equal(await db.store.markReminderSent('METRICS_AUTH_TOKEN', due, 'T-7d'), true)
      assert.equal(await db.store.markReminderSent('METRICS_AUTH_TOKEN', due, 'T-7d'), false)
      assert.equal(await db.store.markReminderSent('METRICS_AUTH_TOKEN', due, 'T-1d'), true)
      assert.deepEqual((await db.store.getSecret('METRICS_AUTH_TOKEN'))?.reminders, { dueAt: due, stages: ['T-7d', 'T-1d'] })
      assert.equal(await db.store.markReminderSent('METRICS_AUTH_TOKEN', due + DAY, 'T-7d'), true)
      assert.deepEqual((await db.store.getSecret('METRICS_AUTH_TOKEN'))?.reminders, { dueAt: due + DAY, stages: ['T-7d'] })
      assert.equal(await db.store.markReminderSent('UNKNOWN', due, 'T-7d'), false)
    })

    it('lists secrets by name', async () => {
      await db.store.upsertSecret({ name: 'A_FIRST', kind: 'manual', cadenceDays: 30 })
      assert.deepEqual((await db.store.listSecrets()).map((s) => s.name), ['A_FIRST', 'METRICS_AUTH_TOKEN', 'SMTP_PASSWORD'])
    })
  })
}
