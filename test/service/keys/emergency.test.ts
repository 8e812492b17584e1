/**
 * Emergency through the CLI against a running service: old access and refresh tokens refused
 * within a second, every session ended, the global not-before set, the report of the revoked
 * keys' recent use; and two concurrent rotations, of which exactly one gets ERR_CONFLICT.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { exitCodeOf } from '../../../src/cli/context.ts'
import { auditHasher } from '../../../src/service/audit/audit-hash.ts'
import { newManagedKey } from '../../../src/service/keys/keys.ts'
import { KeyRotation } from '../../../src/service/keys/rotation.ts'
import { NOT_BEFORE_SETTING } from '../../../src/service/auth/revocations.ts'
import type { Store } from '../../../src/store/store.ts'
import { runCli } from '../../cli/helpers.ts'
import { TestClock, claimsOf, headerOf, signedIn, testServer, type TestServer } from '../../http/support.ts'
import { waitFor } from '../../store/support/fixtures.ts'
import { sqliteFactory, type TestDatabase } from '../../store/support/stores.ts'

describe('emergency', () => {
  let server: TestServer
  before(async () => { server = await testServer() })
  after(async () => { await server.stop() })

  test('revokes both keys, issues new ones, ends every session, refuses old tokens everywhere within a second, reports use', async () => {
    const a = await signedIn(server)
    const b = await signedIn(server)
    const oldAccess = headerOf(a.accessToken).kid as string
    const oldRefresh = headerOf(a.refreshToken).kid as string
    for (let i = 0; i < 3; i++) assert.equal((await server.request('GET', '/api/auth/me', { token: a.accessToken })).statusCode, 200)
    await server.service.usage.flush()

    const started = Date.now()
    const r = await runCli(['--store', join(server.dir, 'rekey.db'), '--json', '--operator', 'oncall', 'emergency', '--reason', 'key in a public gist'], {})
    assert.equal(r.code, 0, r.stderr)
    const report = JSON.parse(r.stdout) as {
      revoked: { kid: string, purpose: string }[], created: { kid: string, purpose: string }[], sessionsEnded: number, notBefore: string,
      usage: { kid: string, instanceId: string, result: string, count: number }[], sessionsSigned: { kid: string, liveSessions: number }[], propagated: boolean,
    }
    assert.deepEqual(report.revoked.map((k) => k.kid).sort(), [oldAccess, oldRefresh].sort())
    assert.deepEqual(report.created.map((k) => k.purpose), ['access', 'refresh'])
    assert.equal(report.sessionsEnded, 2)
    assert.equal(report.propagated, true)
    assert.deepEqual(report.usage.filter((u) => u.kid === oldAccess && u.result === 'ok').map((u) => [u.instanceId, u.count]), [[server.service.instanceId, 3]])
    assert.deepEqual(report.sessionsSigned, [{ kid: oldRefresh, liveSessions: 2 }])
    assert.equal(await server.service.store.getSetting(NOT_BEFORE_SETTING), String(Math.floor(Date.parse(report.notBefore) / 1000)))

    await waitFor(() => server.service.keys.access.currentKid !== oldAccess && server.service.keys.refresh.currentKid !== oldRefresh, 1000, 'the new keys')
    const me = await server.request('GET', '/api/auth/me', { token: a.accessToken })
    assert.equal(me.statusCode, 401)
    assert.equal((me.json() as { error: string }).error, 'ERR_KEY_REVOKED')
    const refresh = await server.request('POST', '/api/auth/refresh', { body: { refreshToken: b.refreshToken } })
    assert.equal(refresh.statusCode, 401)
    assert.ok(Date.now() - started < 3000)
    const fresh = await server.request('POST', '/api/auth/login', { body: { email: a.email, password: a.password } })
    assert.equal(fresh.statusCode, 200)
    assert.equal(headerOf((fresh.json() as { accessToken: string }).accessToken).kid, report.created.find((k) => k.purpose === 'access')?.kid)
    const row = (await server.service.store.listAudit()).find((e) => e.method === 'emergency')
    assert.equal(row?.operator, 'oncall')
    assert.match(row?.notes ?? '', /every session ended.*reason: key in a public gist/)
  })
})

describe('emergency within one second (iat counts whole seconds)', () => {
  let server: TestServer
  // Frozen 200 ms into a second: a login, the emergency and a new login all fall in that second.
  const clock = new TestClock(Math.floor(Date.now() / 1000) * 1000 + 200)
  before(async () => { server = await testServer({ clock }) })
  after(async () => { await server.stop() })

  test('a token issued earlier in the emergency\'s second is refused; one issued later in it works', async () => {
    const before = await signedIn(server)
    assert.equal((await server.request('GET', '/api/auth/me', { token: before.accessToken })).statusCode, 200)
    clock.advance(100)
    // Refresh only: the access key stays, so only the not-before can refuse the older access token.
    const report = await server.service.rotation.emergency({ secret: 'refresh', reason: 'same second', actor: { operator: 'oncall', requestId: null } })
    await waitFor(() => server.service.revocations.notBefore > 0, 1000, 'the not-before')
    assert.equal(Date.parse(report.notBefore), Math.floor(clock.now() / 1000) * 1000 + 1000, 'the not-before is the second after the emergency')
    for (const token of [before.accessToken]) {
      const me = await server.request('GET', '/api/auth/me', { token })
      assert.equal(me.statusCode, 401, 'the access token of the emergency\'s own second')
    }
    assert.equal((await server.request('POST', '/api/auth/refresh', { body: { refreshToken: before.refreshToken } })).statusCode, 401)
    clock.advance(100)
    const fresh = await server.request('POST', '/api/auth/login', { body: { email: before.email, password: before.password } })
    assert.equal(fresh.statusCode, 200)
    const pair = fresh.json() as { accessToken: string, refreshToken: string }
    assert.equal(claimsOf(pair.accessToken).iat, Date.parse(report.notBefore) / 1000, 'stamped with the not-before, less than a second ahead')
    assert.equal((await server.request('GET', '/api/auth/me', { token: pair.accessToken })).statusCode, 200)
    assert.equal((await server.request('POST', '/api/auth/refresh', { body: { refreshToken: pair.refreshToken } })).statusCode, 200)
  })
})

describe('concurrency', () => {
  let db: TestDatabase
  let other: Store
  // One master key for the seeded keys and both operators: a state change re-seals the key it moves.
  const master = randomBytes(32)
  before(async () => {
    db = await sqliteFactory.create()
    other = await db.open()
    await db.store.transitionKeys({ expectedVersion: 0, insert: [newManagedKey(master, 'access', Date.now()), newManagedKey(master, 'refresh', Date.now())] })
  })
  after(async () => { await db.destroy() })

  /** Lets both operators read the key set before either writes: a real race, every time. */
  function racing(store: Store, gate: { reads: number, open: Promise<void>, release: () => void }): Store {
    return new Proxy(store, {
      get(target, prop, receiver) {
        if (prop === 'getKeyset') {
          return async (...args: Parameters<Store['getKeyset']>) => {
            const keyset = await target.getKeyset(...args)
            if (++gate.reads === 2) gate.release()
            return keyset
          }
        }
        if (prop === 'transitionKeys') {
          return async (...args: Parameters<Store['transitionKeys']>) => {
            await gate.open
            return target.transitionKeys(...args)
          }
        }
        const value = Reflect.get(target, prop, receiver) as unknown
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value
      },
    })
  }

  test('two operators rotating at once: one wins, the other gets ERR_CONFLICT (exit 1) and nothing of it is written', async () => {
    let release = (): void => {}
    const gate = { reads: 0, open: new Promise<void>((resolve) => { release = resolve }), release: () => release() }
    const make = (store: Store): KeyRotation => new KeyRotation({ store: racing(store, gate), masterKey: master, computeHash: auditHasher(master), accessTokenTtl: 900, refreshTokenTtl: 86_400 })
    const before = await db.store.getKeyset()
    const results = await Promise.allSettled([
      make(db.store).rotate({ secret: 'access', actor: { operator: 'alice', requestId: null } }),
      make(other).rotate({ secret: 'access', actor: { operator: 'bob', requestId: null } }),
    ])
    const rejected = results.filter((r) => r.status === 'rejected')
    const fulfilled = results.filter((r) => r.status === 'fulfilled')
    assert.equal(rejected.length, 1)
    assert.equal(fulfilled.length, 1)
    const err = (rejected[0] as PromiseRejectedResult).reason as { code: string }
    assert.equal(err.code, 'ERR_CONFLICT')
    assert.equal(exitCodeOf(err), 1)
    const keys = await db.store.listKeys('access')
    assert.equal(keys.length, before.keys.filter((k) => k.purpose === 'access').length + 1, 'only the winner staged a key')
    assert.equal(keys.filter((k) => k.state === 'current').length, 1)
    assert.equal((await db.store.listAudit()).length, 2, 'the winner\'s stage and promote rows only')
  })

  test('a rotation waiting out its publication delay that finds its key already promoted (the scheduler, another operator) reports it done, not ERR_CONFLICT', async () => {
    const make = (store: Store): KeyRotation => new KeyRotation({ store, masterKey: master, computeHash: auditHasher(master), accessTokenTtl: 900, refreshTokenTtl: 86_400, accessKeyAlg: 'EdDSA' })
    const actor = { operator: 'alice', requestId: null }
    const waiting = make(db.store).rotate({ secret: 'access', actor, publishDelayMs: 600 })
    let staged: string | undefined
    for (let i = 0; i < 200 && staged === undefined; i++) {
      staged = (await db.store.listKeys('access')).find((k) => k.state === 'next')?.kid
      if (staged === undefined) await new Promise((resolve) => setTimeout(resolve, 10))
    }
    assert.ok(staged !== undefined, 'the first rotation staged its key')
    const promoter = await make(db.store).rotate({ secret: 'access', actor: { operator: 'bob', requestId: null }, publishDelayMs: 0 })
    assert.equal(promoter.promoted, true)
    assert.deepEqual(promoter.staged.map((s) => [s.kid, s.resumed]), [[staged, true]])
    const report = await waiting
    assert.equal(report.promoted, true)
    assert.deepEqual(report.changes, [])
    assert.equal((await db.store.listKeys('access')).find((k) => k.state === 'current')?.kid, staged)
  })

  test('a --hard rotation whose key another promoted softly meanwhile still revokes the old keys (it does not report a hard rotation done while they verify)', async () => {
    const make = (store: Store): KeyRotation => new KeyRotation({ store, masterKey: master, computeHash: auditHasher(master), accessTokenTtl: 900, refreshTokenTtl: 86_400, accessKeyAlg: 'EdDSA' })
    const actor = { operator: 'alice', requestId: null }
    const before = (await db.store.listKeys('access')).filter((k) => k.state === 'current' || k.state === 'previous').map((k) => k.kid)
    assert.ok(before.length > 0)
    const waiting = make(db.store).rotate({ secret: 'access', actor, hard: true, publishDelayMs: 600 })
    let staged: string | undefined
    for (let i = 0; i < 200 && staged === undefined; i++) {
      staged = (await db.store.listKeys('access')).find((k) => k.state === 'next')?.kid
      if (staged === undefined) await new Promise((resolve) => setTimeout(resolve, 10))
    }
    assert.ok(staged !== undefined, 'the hard rotation staged its key')
    // A promoter that does not know of the hard intent (a rekey from before it was recorded, or
    // the setting lost) finishes the staged rotation softly: the old current key becomes previous.
    await db.store.setSetting('rotation.hard_staged', null)
    const scheduler = await make(db.store).rotate({ secret: 'access', actor: { operator: 'rekey-scheduler', requestId: null }, publishDelayMs: 0, noWait: true })
    assert.equal(scheduler.promoted, true)
    const report = await waiting
    assert.equal(report.promoted, true)
    const keys = await db.store.listKeys('access')
    assert.equal(keys.find((k) => k.state === 'current')?.kid, staged)
    for (const kid of before) assert.equal(keys.find((k) => k.kid === kid)?.state, 'revoked', `${kid} still verifies after rotate --hard`)
    assert.deepEqual(report.changes.map((c) => [c.kid, c.from, c.to]).sort(), before.map((kid) => [kid, 'previous', 'revoked']).sort())
    const last = (await db.store.listAudit()).at(-1)
    assert.equal(last?.method, 'rotate-hard')
    assert.equal(last?.operator, 'alice')
  })
})
