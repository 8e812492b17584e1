/**
 * Targeted invalidation across two instances on one PostgreSQL: a logout or logout-all
 * anywhere evicts that one user on every instance (the notification names the user), so the
 * other users stay cached and `/me` keeps answering from memory; the user cache is an LRU.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { after, before, describe, test } from 'node:test'
import { RevocationCache } from '../../src/service/auth/revocations.ts'
import { credentials, testServer, type TestServer } from '../http/support.ts'
import { newUser, waitFor } from '../store/support/fixtures.ts'
import { POSTGRES_URL, REQUIRE_POSTGRES, adminQuery, freshSchema, sqliteFactory } from '../store/support/stores.ts'

const skip = POSTGRES_URL === '' && !REQUIRE_POSTGRES ? 'REKEY_TEST_POSTGRES_URL is not set' : false

describe('per-user invalidation across two instances (PostgreSQL)', { skip }, () => {
  const schema = freshSchema()
  const masterKey = randomBytes(32).toString('base64')
  let a: TestServer
  let b: TestServer

  before(async () => {
    a = await testServer({ env: { REKEY_STORE: POSTGRES_URL, REKEY_MASTER_KEY: masterKey }, storeOptions: { schema, applicationName: `${schema}-a` }, instanceId: 'instance-a' })
    b = await testServer({ env: { REKEY_STORE: POSTGRES_URL, REKEY_MASTER_KEY: masterKey }, storeOptions: { schema, applicationName: `${schema}-b` }, instanceId: 'instance-b' })
  })
  after(async () => {
    await Promise.allSettled([a?.stop(), b?.stop()])
    await adminQuery(`DROP SCHEMA IF EXISTS ${schema} CASCADE`)
  })

  async function signIn(server: TestServer): Promise<{ id: string, accessToken: string, refreshToken: string, creds: ReturnType<typeof credentials> }> {
    const creds = credentials()
    const reg = await server.request('POST', '/api/auth/register', { body: creds })
    const login = await server.request('POST', '/api/auth/login', { body: creds })
    return { id: (reg.json() as { id: string }).id, creds, ...(login.json() as { accessToken: string, refreshToken: string }) }
  }

  test('logout and logout-all on A evict only that user on B; the others stay cached', async () => {
    const users = [await signIn(a), await signIn(a), await signIn(a)]
    const [victim, ...others] = users as [typeof users[0], typeof users[0], typeof users[0]]
    for (const u of users) assert.equal((await b.request('GET', '/api/auth/me', { token: u.accessToken })).statusCode, 200)
    for (const u of users) assert.notEqual(b.service.revocations.peek(u.id), undefined, 'cached on B')

    // A logout ends one session: B forgets that user only.
    assert.equal((await a.request('POST', '/api/auth/logout', { body: { refreshToken: victim.refreshToken } })).statusCode, 204)
    await waitFor(() => b.service.revocations.peek(victim.id) === undefined, 1000, 'B to evict the user who logged out')
    for (const u of others) assert.notEqual(b.service.revocations.peek(u.id), undefined, 'the others stay cached on B')

    // The logout ended that session's access token too (sid): the victim signs in again.
    for (const ended = Date.now(); ;) {
      if ((await b.request('GET', '/api/auth/me', { token: victim.accessToken })).statusCode === 401) break
      assert.ok(Date.now() - ended < 1000, 'the ended session is refused on B within a second')
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
    victim.accessToken = ((await a.request('POST', '/api/auth/login', { body: victim.creds })).json() as { accessToken: string }).accessToken
    // Logout-all: the victim's access token is refused on B within a second, the others untouched.
    assert.equal((await b.request('GET', '/api/auth/me', { token: victim.accessToken })).statusCode, 200, 'B caches the victim again')
    const started = Date.now()
    assert.equal((await a.request('POST', '/api/auth/logout-all', { token: victim.accessToken })).statusCode, 204)
    for (;;) {
      const res = await b.request('GET', '/api/auth/me', { token: victim.accessToken })
      if (res.statusCode === 401) break
      assert.ok(Date.now() - started < 1000, 'refused on B within a second')
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
    for (const u of others) {
      assert.notEqual(b.service.revocations.peek(u.id), undefined, 'still cached on B after the logout-all')
      assert.equal((await b.request('GET', '/api/auth/me', { token: u.accessToken })).statusCode, 200)
    }
    // Nothing moved the shared revocations counter: revocations of users do not queue on one row.
    const counters = await a.service.store.changeCounters()
    assert.equal(counters.revocations, 0)
  })
})

describe('user cache: least recently used goes first', () => {
  test('a bounded cache evicts the user read longest ago, not everyone', async () => {
    const db = await sqliteFactory.create()
    try {
      const ids = [await newUser(db.store), await newUser(db.store), await newUser(db.store)]
      const cache = new RevocationCache(db.store, { maxUsers: 2 })
      await cache.getUser(ids[0] as string)
      await cache.getUser(ids[1] as string)
      assert.notEqual(cache.peek(ids[0] as string), undefined, 'touching the first makes the second the oldest')
      await cache.getUser(ids[2] as string)
      assert.equal(cache.size, 2)
      assert.notEqual(cache.peek(ids[0] as string), undefined)
      assert.equal(cache.peek(ids[1] as string), undefined, 'the least recently used was evicted')
      assert.notEqual(cache.peek(ids[2] as string), undefined)
      cache.evictUser(ids[0] as string)
      assert.equal(cache.size, 1)
      assert.notEqual(cache.peek(ids[2] as string), undefined, 'evicting one user leaves the others')
    } finally {
      await db.destroy()
    }
  })
})
