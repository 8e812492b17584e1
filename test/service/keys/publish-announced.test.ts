/**
 * The publication delay follows the JWKS max-age the running services announce, not only the
 * one of the process that rotates: a CLI started without the service's REKEY_JWKS_MAX_AGE must
 * not promote an asymmetric key that JWKS caches fed by the service do not hold yet.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { after, before, describe, test } from 'node:test'
import { auditHasher } from '../../../src/service/audit/audit-hash.ts'
import { newManagedKey } from '../../../src/service/keys/keys.ts'
import { KeyRotation } from '../../../src/service/keys/rotation.ts'
import { announceJwksMaxAge, announcedJwksMaxAge } from '../../../src/service/keys/token-lifetimes.ts'
import { sqliteFactory, type TestDatabase } from '../../store/support/stores.ts'

describe('publication delay announced by the services', () => {
  let db: TestDatabase
  const master = randomBytes(32)
  const actor = { operator: 'alice', requestId: null }
  before(async () => {
    db = await sqliteFactory.create()
    await db.store.transitionKeys({ expectedVersion: 0, insert: [newManagedKey(master, 'access', Date.now(), 'EdDSA'), newManagedKey(master, 'refresh', Date.now())] })
  })
  after(async () => { await db.destroy() })
  // The CLI's own REKEY_JWKS_MAX_AGE is 0 here: only the announced max-age can delay the promotion.
  const cli = (): KeyRotation => new KeyRotation({ store: db.store, masterKey: master, computeHash: auditHasher(master), accessTokenTtl: 900, refreshTokenTtl: 86_400, publishDelayMs: 0 })

  test('the longest announced max-age is kept', async () => {
    await announceJwksMaxAge(db.store, 1)
    await announceJwksMaxAge(db.store, 0)
    assert.equal(await announcedJwksMaxAge(db.store), 1)
  })

  test('rotate waits out the announced max-age although its own is 0', async () => {
    const started = Date.now()
    const report = await cli().rotate({ secret: 'access', actor })
    assert.equal(report.promoted, true)
    const staged = (await db.store.listKeys('access')).find((k) => k.kid === report.staged[0]?.kid)
    assert.ok(staged !== undefined)
    assert.equal(Date.parse(report.publishedUntil as string), staged.createdAt + 1000)
    assert.ok(Date.now() - started >= 1000, 'promoted only after the announced second')
  })

  test('an explicit --publish-delay still wins', async () => {
    const started = Date.now()
    const report = await cli().rotate({ secret: 'access', actor, publishDelayMs: 0 })
    assert.equal(report.promoted, true)
    assert.equal(report.publishedUntil, null)
    assert.ok(Date.now() - started < 1000)
  })
})
