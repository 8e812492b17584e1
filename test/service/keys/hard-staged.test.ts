/**
 * A hard rotation left staged is finished hard, whoever finishes it: `rekey rotate --hard
 * --no-wait` (or the admin API's 202) returns at staging while the publication delay runs, and
 * the scheduler, which promotes without --hard, must still revoke the old keys: the operator
 * was told every token they signed is refused. The clock is moved by hand; nothing sleeps.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { afterEach, beforeEach, describe, test } from 'node:test'
import { auditHasher } from '../../../src/service/audit/audit-hash.ts'
import { newManagedKey } from '../../../src/service/keys/keys.ts'
import { KeyRotation } from '../../../src/service/keys/rotation.ts'
import { sqliteFactory, type TestDatabase } from '../../store/support/stores.ts'

const T0 = Date.parse('2026-11-30T05:00:00.000Z')

describe('a hard rotation finished by the scheduler', () => {
  let db: TestDatabase
  let now = T0
  const master = randomBytes(32)
  const alice = { operator: 'alice', requestId: null }
  const scheduler = { operator: 'rekey-scheduler', requestId: null }
  beforeEach(async () => {
    now = T0
    db = await sqliteFactory.create()
    await db.store.transitionKeys({ expectedVersion: 0, insert: [newManagedKey(master, 'access', T0 - 1000, 'EdDSA'), newManagedKey(master, 'refresh', T0 - 1000)] })
  })
  afterEach(async () => { await db.destroy() })
  const rotation = (): KeyRotation => new KeyRotation({
    store: db.store, masterKey: master, computeHash: auditHasher(master), accessTokenTtl: 900, refreshTokenTtl: 86_400,
    publishDelayMs: 60_000, clock: { now: () => now },
  })
  const currentAccess = async (): Promise<string> => (await db.store.listKeys('access')).find((k) => k.state === 'current')?.kid as string

  test('rotate --hard --no-wait, then the scheduler promotes: the old key is revoked, the audit row says rotate-hard', async () => {
    const old = await currentAccess()
    const staged = await rotation().rotate({ secret: 'access', hard: true, noWait: true, actor: alice })
    assert.equal(staged.promoted, false)
    assert.equal(staged.waitingFor, 'publication')
    now += 61_000
    const report = await rotation().rotate({ secret: 'access', noWait: true, actor: scheduler })
    assert.equal(report.promoted, true)
    assert.equal(report.hard, true)
    const keys = await db.store.listKeys('access')
    assert.equal(keys.find((k) => k.kid === old)?.state, 'revoked', 'the old key verifies after a hard rotation')
    assert.equal(keys.find((k) => k.state === 'current')?.kid, staged.staged[0]?.kid)
    const last = (await db.store.listAudit()).at(-1)
    assert.equal(last?.method, 'rotate-hard')
    assert.equal(last?.operator, 'rekey-scheduler')
  })

  test('a soft rotation left staged is still finished softly; a garbage setting reads as no hard rotation', async () => {
    const old = await currentAccess()
    await db.store.setSetting('rotation.hard_staged', '{"not":"a list"}')
    await rotation().rotate({ secret: 'access', noWait: true, actor: alice })
    now += 61_000
    const report = await rotation().rotate({ secret: 'access', noWait: true, actor: scheduler })
    assert.equal(report.promoted, true)
    assert.equal(report.hard, false)
    assert.equal((await db.store.listKeys('access')).find((k) => k.kid === old)?.state, 'previous')
  })

  test('a soft rotate that resumes a key staged by --hard finishes it hard (the staging said so)', async () => {
    const old = await currentAccess()
    await rotation().rotate({ secret: 'access', hard: true, noWait: true, actor: alice })
    now += 61_000
    const report = await rotation().rotate({ secret: 'access', actor: { operator: 'bob', requestId: null } })
    assert.equal(report.hard, true)
    assert.deepEqual(report.changes.map((c) => [c.kid, c.to]).filter(([kid]) => kid === old), [[old, 'revoked']])
  })
})
