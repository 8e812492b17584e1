/**
 * The rewrap lock against both real stores, with a frozen clock: a live holder refuses a
 * second run (ERR_CONFLICT); a holder rekey cannot check is taken over only once its lease
 * expired, after which the stalled run's next save is refused (it stops instead of racing
 * the run that took over). The takeover from a kill -9'd process on this host is proven with
 * real processes in test/ops/rewrap-lock.test.ts.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { acquireRewrapLock, REWRAP_LEASE_TTL_MS } from '../../../src/service/data-keys/rewrap-lock.ts'
import { STORES, type TestDatabase } from '../../store/support/stores.ts'

const conflict = (pattern: RegExp) => (err: unknown): boolean => {
  assert.equal((err as { code?: string }).code, 'ERR_CONFLICT')
  assert.match((err as Error).message, pattern)
  return true
}

for (const factory of STORES) {
  describe(`rewrap lock on ${factory.name}`, { skip: factory.skip }, () => {
    let db: TestDatabase
    before(async () => { db = await factory.create() })
    after(async () => { await db?.destroy() })

    it('refuses a second run while the holder lives, and gives the lock up on release', async () => {
      let now = 1_000_000
      const clock = { now: () => now, isAlive: () => true }
      const first = await acquireRewrapLock(db.store, 'col-a', 'users.ssn', clock)
      await assert.rejects(acquireRewrapLock(db.store, 'col-a', 'users.ssn', clock), conflict(/another rewrap of users\.ssn is running \(process \d+ on /))
      // Another column is another lock.
      const other = await acquireRewrapLock(db.store, 'col-b', 'users.email', clock)
      await other.release()
      now += REWRAP_LEASE_TTL_MS - 1
      await assert.rejects(acquireRewrapLock(db.store, 'col-a', 'users.ssn', clock), conflict(/another rewrap/))
      await first.release()
      const next = await acquireRewrapLock(db.store, 'col-a', 'users.ssn', clock)
      await next.release()
    })

    it('takes over an expired lease of a holder it cannot check, and the stalled run stops', async () => {
      let now = 3_000_000
      const alive = { now: () => now, isAlive: () => true }
      const stalled = await acquireRewrapLock(db.store, 'col-d', 'notes.title', alive)
      now += REWRAP_LEASE_TTL_MS
      const taken = await acquireRewrapLock(db.store, 'col-d', 'notes.title', alive)
      await assert.rejects(db.store.transaction((tx) => stalled.renewIn(tx)), conflict(/was taken over by another run/))
      await db.store.transaction((tx) => taken.renewIn(tx))
      await stalled.release()
      await assert.rejects(acquireRewrapLock(db.store, 'col-d', 'notes.title', alive), conflict(/another rewrap/))
      await taken.release()
    })
  })
}
