import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { STORES } from './support/stores.ts'
import type { TestDatabase } from './support/stores.ts'
import { T0, key, newUser, session, waitFor } from './support/fixtures.ts'
import type { ChangeChannel, Store } from '../../src/store/store.ts'

/** Delivery bound the contract promises: within a second. */
const WITHIN_MS = 1000

for (const factory of STORES) {
  describe(`store change notifications (${factory.name})`, { skip: factory.skip }, () => {
    let db: TestDatabase
    let writer: Store
    let reader: Store
    const heard: ChangeChannel[] = []
    let unsubscribe: () => Promise<void>
    before(async () => {
      db = await factory.create()
      writer = db.store
      reader = await db.open() // another instance: a second connection or pool
      unsubscribe = await reader.subscribe((channel) => heard.push(channel))
    })
    after(async () => { await db?.destroy() })

    /** Runs `change` on the writer and waits until the reader hears `channel`. */
    async function expectSignal(channel: ChangeChannel, change: () => Promise<unknown>): Promise<void> {
      heard.length = 0
      await change()
      await waitFor(() => heard.includes(channel), WITHIN_MS, `'${channel}' on the other instance`)
    }

    it('signals key changes to another instance within a second', async () => {
      await expectSignal('keys', () => writer.insertKey(key('n1', 'next'), { expectedVersion: 0 }))
    })

    it('signals session revocations and token-version bumps', async () => {
      const userId = await newUser(writer)
      const s = session(userId, 'notify-1')
      await writer.createFamily(s)
      await expectSignal('revocations', () => writer.revokeFamily(s.familyId, 'logout', T0))
      await expectSignal('revocations', () => writer.bumpTokenVersion(userId))
      await expectSignal('users', () => writer.setRole(userId, 'admin'))
    })

    it('signals settings', async () => {
      await expectSignal('settings', () => writer.setSetting('not_before', String(T0)))
    })

    it('moves the change counters of the channels that changed', async () => {
      const before = await reader.changeCounters()
      await expectSignal('settings', () => writer.setSetting('counted', 'yes'))
      const after = await reader.changeCounters()
      assert.equal(after.settings, before.settings + 1)
      assert.equal(after.keys, before.keys)
    })

    it('does not signal a rolled-back change', async () => {
      heard.length = 0
      await assert.rejects(writer.transaction(async (tx) => {
        await tx.setSetting('rolled_back', 'yes')
        throw new Error('abort')
      }))
      await new Promise((resolve) => setTimeout(resolve, 600))
      assert.deepEqual(heard, [])
    })

    it('stops calling after unsubscribe', async () => {
      const late: ChangeChannel[] = []
      const off = await reader.subscribe((channel) => late.push(channel))
      await expectSignal('settings', () => writer.setSetting('again', '1'))
      await waitFor(() => late.length > 0, WITHIN_MS, 'the second subscriber')
      await off()
      await unsubscribe()
      late.length = 0
      heard.length = 0
      await writer.setSetting('again', '2')
      await new Promise((resolve) => setTimeout(resolve, 600))
      assert.deepEqual(late, [])
      assert.deepEqual(heard, [])
    })
  })
}
