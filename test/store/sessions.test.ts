import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { STORES } from './support/stores.ts'
import type { TestDatabase } from './support/stores.ts'
import { DAY, T0, auditEvent, chainHash, newUser, session, sha256 } from './support/fixtures.ts'

const OVERLAP = 10_000

/** The successor token of a rotation at `now`. */
function next(token: string, now: number, kid = 'kid-r1'): { tokenHash: string, kid: string, issuedAt: number, expiresAt: number } {
  return { tokenHash: sha256(token), kid, issuedAt: now, expiresAt: now + DAY }
}

for (const factory of STORES) {
  describe(`store sessions (${factory.name})`, { skip: factory.skip }, () => {
    let db: TestDatabase
    before(async () => { db = await factory.create() })
    after(async () => { await db?.destroy() })

    it('creates a family with its first token, unused and unrevoked', async () => {
      const userId = await newUser(db.store)
      const s = session(userId, 'first-a')
      await db.store.createFamily(s)
      assert.deepEqual(await db.store.getFamilyByTokenHash(sha256('first-a')), {
        id: s.familyId, userId, createdAt: T0, expiresAt: T0 + DAY, revokedAt: null, revokeReason: null,
      })
      assert.deepEqual(await db.store.getRefreshToken(sha256('first-a')), {
        tokenHash: sha256('first-a'), familyId: s.familyId, kid: 'kid-r1', issuedAt: T0, expiresAt: T0 + DAY,
        usedAt: null, successorHash: null, parentHash: null, successorBlob: null,
      })
      assert.equal(await db.store.getFamilyByTokenHash(sha256('never-issued')), null)
      assert.equal(await db.store.getRefreshToken(sha256('never-issued')), null)
    })

    it('refuses a duplicate token hash with ERR_CONFLICT and writes no family', async () => {
      const userId = await newUser(db.store)
      await db.store.createFamily(session(userId, 'dup-token'))
      const again = session(userId, 'dup-token')
      await assert.rejects(db.store.createFamily(again), { code: 'ERR_CONFLICT' })
      assert.equal(await db.store.revokeFamily(again.familyId, 'logout', T0), false)
    })

    it('rotates an unused token: marks it used, links the successor, stores the blob', async () => {
      const userId = await newUser(db.store)
      const s = session(userId, 'rot-1')
      await db.store.createFamily(s)
      const now = T0 + 1000
      const result = await db.store.rotateToken({ oldHash: sha256('rot-1'), next: next('rot-2', now, 'kid-r2'), successorBlob: 'sealed-pair', now, overlapMs: OVERLAP })
      assert.deepEqual(result, { outcome: 'rotated', familyId: s.familyId, userId })
      const old = await db.store.getRefreshToken(sha256('rot-1'))
      assert.equal(old?.usedAt, now)
      assert.equal(old?.successorHash, sha256('rot-2'))
      assert.equal(old?.successorBlob, 'sealed-pair')
      const fresh = await db.store.getRefreshToken(sha256('rot-2'))
      assert.deepEqual(fresh, {
        tokenHash: sha256('rot-2'), familyId: s.familyId, kid: 'kid-r2', issuedAt: now, expiresAt: now + DAY,
        usedAt: null, successorHash: null, parentHash: sha256('rot-1'), successorBlob: null,
      })
    })

    it('answers a second use inside the overlap window with the same successor and blob, writing nothing', async () => {
      const userId = await newUser(db.store)
      const s = session(userId, 'ov-1')
      await db.store.createFamily(s)
      await db.store.rotateToken({ oldHash: sha256('ov-1'), next: next('ov-2', T0), successorBlob: 'blob-ov', now: T0, overlapMs: OVERLAP })
      const second = await db.store.rotateToken({ oldHash: sha256('ov-1'), next: next('ov-other', T0 + OVERLAP), now: T0 + OVERLAP, overlapMs: OVERLAP })
      assert.deepEqual(second, { outcome: 'overlap', familyId: s.familyId, userId, successorHash: sha256('ov-2'), successorBlob: 'blob-ov' })
      assert.equal(await db.store.getRefreshToken(sha256('ov-other')), null)
      assert.equal((await db.store.getFamilyByTokenHash(sha256('ov-1')))?.revokedAt, null)
    })

    it('treats a use after the overlap window as reuse: the whole family ends, with its audit row', async () => {
      const userId = await newUser(db.store)
      const s = session(userId, 're-1')
      await db.store.createFamily(s)
      await db.store.rotateToken({ oldHash: sha256('re-1'), next: next('re-2', T0), now: T0, overlapMs: OVERLAP })
      const late = T0 + OVERLAP + 1
      const result = await db.store.rotateToken({
        oldHash: sha256('re-1'), next: next('re-x', late), now: late, overlapMs: OVERLAP,
        reuseAudit: ({ familyId }) => ({ event: auditEvent(`reuse ${familyId}`, late), computeHash: chainHash }),
      })
      assert.deepEqual(result, { outcome: 'reuse', familyId: s.familyId, userId })
      const family = await db.store.getFamilyByTokenHash(sha256('re-2'))
      assert.equal(family?.revokedAt, late)
      assert.equal(family?.revokeReason, 'reuse')
      assert.equal((await db.store.listAudit()).at(-1)?.notes, `reuse ${s.familyId}`)
      // The successor, still unused, is dead with its family.
      const after = await db.store.rotateToken({ oldHash: sha256('re-2'), next: next('re-3', late), now: late, overlapMs: OVERLAP })
      assert.deepEqual(after, { outcome: 'invalid', reason: 'revoked' })
    })

    it('answers invalid for unknown, expired and revoked tokens without writing', async () => {
      const userId = await newUser(db.store)
      const unknown = await db.store.rotateToken({ oldHash: sha256('nope'), next: next('nope-2', T0), now: T0, overlapMs: OVERLAP })
      assert.deepEqual(unknown, { outcome: 'invalid', reason: 'unknown' })
      await db.store.createFamily(session(userId, 'exp-1'))
      const expired = await db.store.rotateToken({ oldHash: sha256('exp-1'), next: next('exp-2', T0 + DAY), now: T0 + DAY, overlapMs: OVERLAP })
      assert.deepEqual(expired, { outcome: 'invalid', reason: 'expired' })
      assert.equal((await db.store.getRefreshToken(sha256('exp-1')))?.usedAt, null)
      const s = session(userId, 'rev-1')
      await db.store.createFamily(s)
      assert.equal(await db.store.revokeFamily(s.familyId, 'logout', T0), true)
      const revoked = await db.store.rotateToken({ oldHash: sha256('rev-1'), next: next('rev-2', T0), now: T0, overlapMs: OVERLAP })
      assert.deepEqual(revoked, { outcome: 'invalid', reason: 'revoked' })
      assert.equal(await db.store.getRefreshToken(sha256('rev-2')), null)
    })

    it('revokes one family once, by id or by token hash', async () => {
      const userId = await newUser(db.store)
      const a = session(userId, 'fam-a')
      const b = session(userId, 'fam-b')
      await db.store.createFamily(a)
      await db.store.createFamily(b)
      assert.equal(await db.store.revokeFamily(a.familyId, 'logout', T0 + 5), true)
      const audited = (await db.store.listAudit()).length
      const audit = { event: auditEvent('logout again'), computeHash: chainHash }
      assert.equal(await db.store.revokeFamily(a.familyId, 'again', T0 + 6, { audit }), false)
      assert.equal((await db.store.listAudit()).length, audited, 'nothing changed, nothing audited')
      const first = await db.store.getFamilyByTokenHash(sha256('fam-a'))
      assert.equal(first?.revokeReason, 'logout')
      assert.equal(first?.revokedAt, T0 + 5)
      assert.deepEqual(await db.store.revokeFamilyByTokenHash(sha256('fam-b'), 'logout', T0), { familyId: b.familyId, userId, revoked: true })
      assert.deepEqual(await db.store.revokeFamilyByTokenHash(sha256('fam-b'), 'logout', T0), { familyId: b.familyId, userId, revoked: false })
      assert.equal(await db.store.revokeFamilyByTokenHash(sha256('no-such'), 'logout', T0), null)
    })

    it('revokes every family of one user, and only theirs', async () => {
      const alice = await newUser(db.store)
      const bob = await newUser(db.store)
      await db.store.createFamily(session(alice, 'all-a1'))
      await db.store.createFamily(session(alice, 'all-a2'))
      await db.store.createFamily(session(bob, 'all-b1'))
      assert.equal(await db.store.revokeAllForUser(alice, 'logout-all', T0), 2)
      assert.equal(await db.store.revokeAllForUser(alice, 'logout-all', T0), 0)
      assert.equal((await db.store.getFamilyByTokenHash(sha256('all-a2')))?.revokeReason, 'logout-all')
      assert.equal((await db.store.getFamilyByTokenHash(sha256('all-b1')))?.revokedAt, null)
    })

    it('counts live sessions per kid of their live token, exactly', async () => {
      const fresh = await factory.create()
      try {
        const { store } = fresh
        const userId = await newUser(store)
        await store.createFamily(session(userId, 'c-1', 'kid-old'))
        await store.createFamily(session(userId, 'c-2', 'kid-old'))
        await store.createFamily(session(userId, 'c-3', 'kid-old'))
        const revoked = session(userId, 'c-4', 'kid-old')
        await store.createFamily(revoked)
        await store.revokeFamily(revoked.familyId, 'logout', T0)
        await store.createFamily(session(userId, 'c-5', 'kid-old', T0 - DAY + 10)) // expires at T0 + 10
        // Rotating moves a session from the old kid to the new one.
        await store.rotateToken({ oldHash: sha256('c-1'), next: next('c-1b', T0, 'kid-new'), now: T0, overlapMs: OVERLAP })
        assert.deepEqual(await store.countLiveSessionsByKid(T0), new Map([['kid-old', 3], ['kid-new', 1]]))
        assert.deepEqual(await store.countLiveSessionsByKid(T0 + 10), new Map([['kid-old', 2], ['kid-new', 1]]))
        assert.deepEqual(await store.countLiveSessionsByKid(T0 + 2 * DAY), new Map())
      } finally {
        await fresh.destroy()
      }
    })

    it('ends every session in an emergency and prunes dead families with their tokens', async () => {
      const fresh = await factory.create()
      try {
        const { store } = fresh
        const userId = await newUser(store)
        await store.createFamily(session(userId, 'e-1'))
        await store.createFamily(session(userId, 'e-2'))
        const audit = { event: auditEvent('emergency'), computeHash: chainHash }
        assert.equal(await store.revokeAllSessions('emergency', T0 + 1, { audit }), 2)
        assert.equal((await store.getFamilyByTokenHash(sha256('e-1')))?.revokeReason, 'emergency')
        assert.deepEqual((await store.listAudit()).map((row) => row.notes), ['emergency'])
        await store.createFamily(session(userId, 'e-3', 'kid-r1', T0 + DAY))
        assert.equal(await store.pruneSessions(T0 + 2), 2)
        assert.equal(await store.getRefreshToken(sha256('e-1')), null)
        assert.notEqual(await store.getRefreshToken(sha256('e-3')), null)
      } finally {
        await fresh.destroy()
      }
    })
  })
}
