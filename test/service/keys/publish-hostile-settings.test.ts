/**
 * The publication delay's store settings, edited behind rekey's back (anyone who can write the
 * store: an application's `Cipher.fromStore` connection among them): `jwks.max_age` and
 * `rotation.publish_until` set to a huge number, garbage or JSON `null` must neither hang a
 * rotation for years nor break `rotate` and `status` with a TypeError or RangeError. The clock is
 * frozen and every rotate returns at staging (`noWait`), so nothing sleeps.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { afterEach, beforeEach, describe, test } from 'node:test'
import { auditHasher } from '../../../src/service/audit/audit-hash.ts'
import { newManagedKey } from '../../../src/service/keys/keys.ts'
import { KeyRotation, PUBLISH_UNTIL_SETTING } from '../../../src/service/keys/rotation.ts'
import { JWKS_MAX_AGE_SETTING } from '../../../src/service/keys/token-lifetimes.ts'
import { sqliteFactory, type TestDatabase } from '../../store/support/stores.ts'

const DAY_MS = 86_400_000
const NOW = Date.parse('2026-11-30T05:00:00.000Z')
const actor = { operator: 'alice', requestId: null }

describe('publication settings edited outside rekey', () => {
  let db: TestDatabase
  const master = randomBytes(32)
  beforeEach(async () => {
    db = await sqliteFactory.create()
    await db.store.transitionKeys({ expectedVersion: 0, insert: [newManagedKey(master, 'access', NOW - 1000, 'EdDSA'), newManagedKey(master, 'refresh', NOW - 1000)] })
  })
  afterEach(async () => { await db.destroy() })
  // The CLI's own REKEY_JWKS_MAX_AGE is 300 s; the clock stands still.
  const cli = (): KeyRotation => new KeyRotation({
    store: db.store, masterKey: master, computeHash: auditHasher(master), accessTokenTtl: 900, refreshTokenTtl: 86_400,
    publishDelayMs: 300_000, clock: { now: () => NOW },
  })
  const stagedAt = async (kid: string | undefined): Promise<number> => {
    const key = (await db.store.listKeys('access')).find((k) => k.kid === kid)
    assert.ok(key !== undefined)
    return key.createdAt
  }

  for (const huge of ['1e300', '1e12', '86401']) {
    test(`jwks.max_age = ${huge}: the staged key is published for at most a day, and status shows when`, async () => {
      await db.store.setSetting(JWKS_MAX_AGE_SETTING, huge)
      const report = await cli().rotate({ secret: 'access', actor, noWait: true })
      assert.equal(report.promoted, false)
      assert.equal(report.waitingFor, 'publication')
      const kid = report.staged[0]?.kid
      const until = new Date(await stagedAt(kid) + DAY_MS).toISOString()
      assert.equal(report.publishedUntil, until)
      assert.deepEqual((await cli().status()).publishedUntil, { [kid as string]: until })
    })
  }

  for (const garbage of ['soon', '', '-5', 'null']) {
    test(`jwks.max_age = ${JSON.stringify(garbage)}: read as no announcement, the CLI's own max-age applies`, async () => {
      await db.store.setSetting(JWKS_MAX_AGE_SETTING, garbage)
      const report = await cli().rotate({ secret: 'access', actor, noWait: true })
      assert.equal(report.publishedUntil, new Date(await stagedAt(report.staged[0]?.kid) + 300_000).toISOString())
    })
  }

  for (const edited of ['null', '[1]', '"x"', '{KID:1e300}', '{KID:-1}', '{KID:"9"}']) {
    test(`rotation.publish_until = ${edited}: rotate recomputes the end, status does not throw`, async () => {
      const first = await cli().rotate({ secret: 'access', actor, noWait: true })
      const kid = first.staged[0]?.kid as string
      await db.store.setSetting(PUBLISH_UNTIL_SETTING, edited.replace('KID', JSON.stringify(kid)))
      assert.deepEqual((await cli().status()).publishedUntil, {})
      const again = await cli().rotate({ secret: 'access', actor, noWait: true })
      assert.equal(again.staged[0]?.kid, kid)
      assert.equal(again.waitingFor, 'publication')
      assert.equal(again.publishedUntil, new Date(await stagedAt(kid) + 300_000).toISOString())
      assert.deepEqual((await cli().status()).publishedUntil, { [kid]: again.publishedUntil })
    })
  }
})
