import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { STORES } from './support/stores.ts'
import type { TestDatabase } from './support/stores.ts'
import { T0, auditEvent, chainHash, newUser } from './support/fixtures.ts'

for (const factory of STORES) {
  describe(`store users (${factory.name})`, { skip: factory.skip }, () => {
    let db: TestDatabase
    before(async () => { db = await factory.create() })
    after(async () => { await db?.destroy() })

    it('creates a user with a lowercased email, role user and token version 0', async () => {
      const user = await db.store.createUser({ id: 'u-create', email: 'Alice@Example.TEST', passwordHash: 'hash-a', createdAt: T0 })
      assert.deepEqual(user, { id: 'u-create', email: 'alice@example.test', passwordHash: 'hash-a', role: 'user', tokenVersion: 0, createdAt: T0, mustChangePassword: false })
      assert.deepEqual(await db.store.getUserById('u-create'), user)
    })

    it('forcePasswordChange marks one user or all, bumping token versions; setPassword clears the mark', async () => {
      await db.store.createUser({ id: 'u-force-1', email: 'force1@example.test', passwordHash: 'hash-1', createdAt: T0 })
      await db.store.createUser({ id: 'u-force-2', email: 'force2@example.test', passwordHash: 'hash-2', createdAt: T0 })
      assert.deepEqual(await db.store.forcePasswordChange('FORCE1@example.test'), ['u-force-1'])
      assert.deepEqual(await db.store.forcePasswordChange('nobody@example.test'), [])
      const marked = await db.store.getUserById('u-force-1')
      assert.deepEqual([marked?.mustChangePassword, marked?.tokenVersion], [true, 1])
      assert.equal((await db.store.getUserById('u-force-2'))?.mustChangePassword, false)
      assert.ok((await db.store.forcePasswordChange(null)).includes('u-force-2'))
      assert.equal(await db.store.setPassword('u-force-1', 'hash-new'), true)
      const reset = await db.store.getUserById('u-force-1')
      assert.deepEqual([reset?.passwordHash, reset?.mustChangePassword, reset?.tokenVersion], ['hash-new', false, 2])
      assert.equal(await db.store.setPassword('no-such-id', 'x'), false)
    })

    it('setUserSecurity sets hash, role, token version and mark at once; listUsers lists them all', async () => {
      await db.store.createUser({ id: 'u-sec', email: 'sec@example.test', passwordHash: 'hash-old', role: 'admin', createdAt: T0 })
      const state = { passwordHash: 'hash-kept', role: 'user' as const, tokenVersion: 7, mustChangePassword: true }
      assert.equal(await db.store.setUserSecurity('u-sec', state), true)
      const kept = await db.store.getUserById('u-sec')
      assert.deepEqual(kept, { id: 'u-sec', email: 'sec@example.test', createdAt: T0, ...state })
      assert.deepEqual((await db.store.listUsers()).find((u) => u.id === 'u-sec'), kept)
      assert.equal((await db.store.listUsers()).length, await db.store.countUsers())
      assert.equal(await db.store.setUserSecurity('no-such-id', state), false)
    })

    it('revokeOtherSessions keeps one session; listRevokedSessions answers ended ones since a time, except given reasons', async () => {
      await db.store.createUser({ id: 'u-sess', email: 'sess@example.test', passwordHash: 'h', createdAt: T0 })
      for (const id of ['f-keep', 'f-a', 'f-b']) await db.store.createFamily({ familyId: id, userId: 'u-sess', createdAt: T0, expiresAt: T0 + 3_600_000 })
      assert.equal(await db.store.revokeOtherSessions('u-sess', 'f-keep', 'password-change', T0 + 10), 2)
      await db.store.revokeFamily('f-keep', 'emergency', T0 + 20)
      const ended = await db.store.listRevokedSessions(T0 + 5, ['emergency'])
      assert.deepEqual(ended.map((e) => e.id).sort(), ['f-a', 'f-b'])
      assert.deepEqual(ended.map((e) => e.revokedAt), [T0 + 10, T0 + 10])
      assert.deepEqual((await db.store.listRevokedSessions(T0 + 15)).map((e) => e.id), ['f-keep'])
    })

    it('finds users by email case-insensitively and answers null for strangers', async () => {
      await db.store.createUser({ id: 'u-find', email: 'bob@example.test', passwordHash: 'hash-b', role: 'admin', createdAt: T0 })
      assert.equal((await db.store.getUserByEmail('BOB@example.TEST'))?.id, 'u-find')
      assert.equal((await db.store.getUserByEmail('BOB@example.TEST'))?.role, 'admin')
      assert.equal(await db.store.getUserByEmail('nobody@example.test'), null)
      assert.equal(await db.store.getUserById('no-such-id'), null)
    })

    it('refuses a taken email in any case with ERR_CONFLICT and does not leak the email', async () => {
      await db.store.createUser({ id: 'u-dup1', email: 'carol@example.test', passwordHash: 'h', createdAt: T0 })
      await assert.rejects(
        db.store.createUser({ id: 'u-dup2', email: 'CAROL@example.test', passwordHash: 'h', createdAt: T0 }),
        (err: Error & { code?: string }) => {
          assert.equal(err.name, 'RekeyError')
          assert.equal(err.code, 'ERR_CONFLICT')
          assert.equal(err.message, 'a user with this email already exists')
          return true
        },
      )
      assert.equal(await db.store.getUserById('u-dup2'), null)
    })

    it('refuses a taken id with ERR_CONFLICT', async () => {
      await db.store.createUser({ id: 'u-same', email: 'dave@example.test', passwordHash: 'h', createdAt: T0 })
      await assert.rejects(
        db.store.createUser({ id: 'u-same', email: 'dave2@example.test', passwordHash: 'h', createdAt: T0 }),
        { code: 'ERR_CONFLICT' },
      )
    })

    it('bumps the token version by one per call and answers null for an unknown user', async () => {
      const id = await newUser(db.store)
      assert.equal(await db.store.bumpTokenVersion(id), 1)
      assert.equal(await db.store.bumpTokenVersion(id), 2)
      assert.equal((await db.store.getUserById(id))?.tokenVersion, 2)
      assert.equal(await db.store.bumpTokenVersion('no-such-user'), null)
    })

    it('bumps the token version and appends its audit row together', async () => {
      const id = await newUser(db.store)
      const before = (await db.store.listAudit()).length
      await db.store.bumpTokenVersion(id, { audit: { event: auditEvent('logout-all'), computeHash: chainHash } })
      const rows = await db.store.listAudit()
      assert.equal(rows.length, before + 1)
      assert.equal(rows.at(-1)?.notes, 'logout-all')
    })

    it('changes roles and reports unknown users', async () => {
      const id = await newUser(db.store)
      assert.equal(await db.store.setRole(id, 'admin'), true)
      assert.equal((await db.store.getUserById(id))?.role, 'admin')
      assert.equal(await db.store.setRole('no-such-user', 'admin'), false)
    })

    it('counts users', async () => {
      const before = await db.store.countUsers()
      await newUser(db.store)
      await newUser(db.store)
      assert.equal(await db.store.countUsers(), before + 2)
    })
  })
}
