/**
 * Managed rotation and emergency on PostgreSQL: two service instances, a rotation run by a
 * third party (the CLI's code path: its own store and lifecycle), both instances sign with
 * the new kid within a second; an emergency is refused on both within a second.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { after, before, describe, test } from 'node:test'
import { auditHasher } from '../../../src/service/audit/audit-hash.ts'
import { KeyRotation } from '../../../src/service/keys/rotation.ts'
import { openStore } from '../../../src/store/open.ts'
import type { Store } from '../../../src/store/store.ts'
import { headerOf, signedIn, testServer, type TestServer } from '../../http/support.ts'
import { waitFor } from '../../store/support/fixtures.ts'
import { POSTGRES_URL, REQUIRE_POSTGRES, adminQuery, freshSchema } from '../../store/support/stores.ts'

const skip = POSTGRES_URL === '' && !REQUIRE_POSTGRES ? 'REKEY_TEST_POSTGRES_URL is not set; PostgreSQL rotation tests skipped' : false

describe('managed rotation across two instances on PostgreSQL', { skip }, () => {
  const schema = freshSchema()
  const masterKey = randomBytes(32)
  let a: TestServer
  let b: TestServer
  let operatorStore: Store
  let rotation: KeyRotation

  before(async () => {
    if (POSTGRES_URL === '') throw new Error('REKEY_REQUIRE_POSTGRES=1 but REKEY_TEST_POSTGRES_URL is not set')
    const env = { REKEY_STORE: POSTGRES_URL, REKEY_MASTER_KEY: masterKey.toString('base64') }
    a = await testServer({ env, storeOptions: { schema, applicationName: `${schema}-a` }, instanceId: 'instance-a' })
    b = await testServer({ env, storeOptions: { schema, applicationName: `${schema}-b` }, instanceId: 'instance-b' })
    operatorStore = await openStore(POSTGRES_URL, { schema, applicationName: `${schema}-cli` })
    rotation = new KeyRotation({ store: operatorStore, masterKey, computeHash: auditHasher(masterKey), accessTokenTtl: 900, refreshTokenTtl: 604_800 })
  })

  after(async () => {
    await Promise.allSettled([a?.stop(), b?.stop(), operatorStore?.close()])
    if (POSTGRES_URL !== '') await adminQuery(`DROP SCHEMA IF EXISTS ${schema} CASCADE`)
  })

  test('rotate: both instances acknowledge and sign with the new kid within a second; old tokens verify as previous', async () => {
    const user = await signedIn(a)
    const started = Date.now()
    const report = await rotation.rotate({ secret: 'access', timeoutMs: 5000, actor: { operator: 'pg-test', requestId: null } })
    const elapsed = Date.now() - started
    assert.equal(report.promoted, true)
    assert.equal(report.signingEverywhere, true)
    assert.deepEqual(report.instances.map((i) => [i.instanceId, i.acknowledged]), [['instance-a', true], ['instance-b', true]])
    assert.ok(elapsed < 1000, `rotation took ${elapsed} ms`)
    const newKid = report.staged[0]?.kid
    for (const server of [a, b]) {
      assert.equal(server.service.keys.access.currentKid, newKid)
      const fresh = await server.request('POST', '/api/auth/login', { body: { email: user.email, password: user.password } })
      assert.equal(headerOf((fresh.json() as { accessToken: string }).accessToken).kid, newKid)
      assert.equal(server.service.keys.access.verify(user.accessToken).state, 'previous')
      assert.equal((await server.request('GET', '/api/auth/me', { token: user.accessToken })).statusCode, 200)
    }
  })

  test('emergency: old access and refresh tokens refused on both instances within a second', async () => {
    const user = await signedIn(b)
    const started = Date.now()
    const report = await rotation.emergency({ reason: 'pg drill', actor: { operator: 'pg-test', requestId: null } })
    const created = new Set(report.created.map((k) => k.kid))
    await waitFor(() => [a, b].every((s) => created.has(s.service.keys.access.currentKid) && created.has(s.service.keys.refresh.currentKid)), 1000, 'both instances to load the new keys')
    for (const server of [a, b]) {
      assert.equal((await server.request('GET', '/api/auth/me', { token: user.accessToken })).statusCode, 401)
      assert.equal((await server.request('POST', '/api/auth/refresh', { body: { refreshToken: user.refreshToken } })).statusCode, 401)
    }
    assert.ok(Date.now() - started < 1500, `emergency took ${Date.now() - started} ms to be refused everywhere`)
    assert.equal(report.propagated, true)
  })
})
