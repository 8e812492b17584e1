/**
 * The service on PostgreSQL: two instances sharing users and sessions, revocation reaching the
 * other instance through LISTEN/NOTIFY, and a store outage (terminated backends, then a port
 * that stops answering) with 503 + Retry-After and recovery without a restart.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import net from 'node:net'
import { after, before, describe, test } from 'node:test'
import { POSTGRES_URL, REQUIRE_POSTGRES, adminQuery, freshSchema } from '../store/support/stores.ts'
import { credentials, headerOf, testServer, type TestServer } from '../http/support.ts'

const skip = POSTGRES_URL === '' && !REQUIRE_POSTGRES ? 'REKEY_TEST_POSTGRES_URL is not set; PostgreSQL service tests skipped' : false

/** A TCP proxy to PostgreSQL that the test can take down (dropping every connection) and bring back. */
class FlakyProxy {
  readonly #server = net.createServer((client) => this.#accept(client))
  readonly #sockets = new Set<net.Socket>()
  #down = false
  readonly #target: { host: string, port: number }

  constructor(target: URL) {
    this.#target = { host: target.hostname, port: Number(target.port || 5432) }
  }

  async listen(): Promise<number> {
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve))
    return (this.#server.address() as net.AddressInfo).port
  }

  #accept(client: net.Socket): void {
    if (this.#down) {
      client.destroy()
      return
    }
    const upstream = net.connect(this.#target)
    for (const [a, b] of [[client, upstream], [upstream, client]] as const) {
      this.#sockets.add(a)
      a.on('error', () => b.destroy())
      a.on('close', () => { this.#sockets.delete(a); b.destroy() })
      a.pipe(b)
    }
  }

  down(): void {
    this.#down = true
    for (const socket of this.#sockets) socket.destroy()
  }

  up(): void {
    this.#down = false
  }

  async close(): Promise<void> {
    this.down()
    await new Promise<void>((resolve) => this.#server.close(() => resolve()))
  }
}

async function eventually<T>(fn: () => Promise<T | undefined>, timeoutMs: number, what: string): Promise<{ value: T, ms: number }> {
  const start = Date.now()
  for (;;) {
    const value = await fn()
    if (value !== undefined) return { value, ms: Date.now() - start }
    if (Date.now() - start > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 20))
  }
}

describe('two instances on one PostgreSQL', { skip }, () => {
  const schema = freshSchema()
  const masterKey = randomBytes(32).toString('base64')
  let proxy: FlakyProxy
  let a: TestServer
  let b: TestServer

  before(async () => {
    proxy = new FlakyProxy(new URL(POSTGRES_URL))
    const port = await proxy.listen()
    const viaProxy = new URL(POSTGRES_URL)
    viaProxy.port = String(port)
    // Started together: both race to create the first keys; exactly one set must result.
    ;[a, b] = await Promise.all([
      testServer({ env: { REKEY_STORE: viaProxy.toString(), REKEY_MASTER_KEY: masterKey }, storeOptions: { schema, applicationName: `${schema}-a`, connectionTimeoutMs: 1000 }, instanceId: 'instance-a' }),
      testServer({ env: { REKEY_STORE: POSTGRES_URL, REKEY_MASTER_KEY: masterKey }, storeOptions: { schema, applicationName: `${schema}-b` }, instanceId: 'instance-b' }),
    ])
  })

  after(async () => {
    await Promise.allSettled([a?.stop(), b?.stop()])
    await proxy?.close()
    await adminQuery(`DROP SCHEMA IF EXISTS ${schema} CASCADE`)
  })

  test('both load the one key set the first of them created', async () => {
    assert.equal(a.service.keys.access.currentKid, b.service.keys.access.currentKid)
    assert.equal(a.service.keys.refresh.currentKid, b.service.keys.refresh.currentKid)
    const keys = await a.service.store.listKeys()
    assert.equal(keys.length, 2)
    const instances = await b.service.store.listInstances(Date.now() - 60_000)
    assert.deepEqual(instances.map((i) => i.instanceId).sort(), ['instance-a', 'instance-b'])
  })

  test('register on A, login on B, refresh on A, me on both', async () => {
    const creds = credentials()
    assert.equal((await a.request('POST', '/api/auth/register', { body: creds })).statusCode, 201)
    const login = await b.request('POST', '/api/auth/login', { body: creds })
    assert.equal(login.statusCode, 200)
    const refreshed = await a.request('POST', '/api/auth/refresh', { body: { refreshToken: login.json().refreshToken } })
    assert.equal(refreshed.statusCode, 200)
    for (const server of [a, b]) {
      const me = await server.request('GET', '/api/auth/me', { token: refreshed.json().accessToken })
      assert.equal(me.statusCode, 200)
      assert.equal(me.json().email, creds.email)
    }
  })

  test('logout-all on B refuses the access token on A within a second (LISTEN/NOTIFY)', async () => {
    const creds = credentials()
    await a.request('POST', '/api/auth/register', { body: creds })
    const { accessToken } = (await a.request('POST', '/api/auth/login', { body: creds })).json() as { accessToken: string }
    assert.equal((await a.request('GET', '/api/auth/me', { token: accessToken })).statusCode, 200, 'A has the user cached')
    assert.equal((await b.request('POST', '/api/auth/logout-all', { token: accessToken })).statusCode, 204)
    const { ms } = await eventually(async () => {
      const res = await a.request('GET', '/api/auth/me', { token: accessToken })
      return res.statusCode === 401 ? res : undefined
    }, 1000, 'A to refuse the token')
    assert.ok(ms < 1000, `refused on A after ${ms} ms`)
  })

  test('terminated backends: requests answer or 503 with Retry-After, then work again', async () => {
    const creds = credentials()
    await a.request('POST', '/api/auth/register', { body: creds })
    await adminQuery('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1', [`${schema}-a`])
    await eventually(async () => {
      const res = await a.request('POST', '/api/auth/login', { body: creds })
      if (res.statusCode === 503) assert.equal(res.headers['retry-after'], '5')
      else assert.equal(res.statusCode, 200)
      return res.statusCode === 200 ? true : undefined
    }, 5000, 'login on A after its backends were terminated')
  })

  test('store down: 503 + Retry-After for store routes, verification from memory, then recovery without restart', async () => {
    const creds = credentials()
    await a.request('POST', '/api/auth/register', { body: creds })
    const pair = (await a.request('POST', '/api/auth/login', { body: creds })).json() as { accessToken: string, refreshToken: string }
    assert.equal((await a.request('GET', '/api/auth/me', { token: pair.accessToken })).statusCode, 200)
    proxy.down()
    try {
      for (const [url, body] of [['/api/auth/register', credentials()], ['/api/auth/login', creds], ['/api/auth/refresh', { refreshToken: pair.refreshToken }]] as const) {
        const res = await a.request('POST', url, { body })
        assert.equal(res.statusCode, 503, url)
        assert.equal(res.headers['retry-after'], '5', url)
        assert.deepEqual(Object.keys(res.json() as object).sort(), ['error', 'message'])
        assert.equal(res.json().error, 'ERR_STORE_UNAVAILABLE')
      }
      const ready = await a.request('GET', '/api/health/ready')
      assert.equal(ready.statusCode, 503)
      assert.equal((await a.request('GET', '/api/health/ping')).statusCode, 200)
      assert.equal((await a.request('GET', '/.well-known/jwks.json')).statusCode, 200)
      // The user is cached: /me verifies and answers from memory.
      const me = await a.request('GET', '/api/auth/me', { token: pair.accessToken })
      assert.equal(me.statusCode, 200)
      assert.equal(me.json().email, creds.email)
      // B, on a healthy path, is unaffected.
      assert.equal((await b.request('GET', '/api/auth/me', { token: pair.accessToken })).statusCode, 200)
    } finally {
      proxy.up()
    }
    await eventually(async () => ((await a.request('GET', '/api/health/ready')).statusCode === 200 ? true : undefined), 10_000, 'A to be ready again')
    const refreshed = await a.request('POST', '/api/auth/refresh', { body: { refreshToken: pair.refreshToken } })
    assert.equal(refreshed.statusCode, 200)
    assert.equal(headerOf(refreshed.json().accessToken).kid, a.service.keys.access.currentKid)
    // Notifications flow again after the reconnect: a logout-all on B reaches A.
    assert.equal((await b.request('POST', '/api/auth/logout-all', { token: refreshed.json().accessToken })).statusCode, 204)
    await eventually(async () => ((await a.request('GET', '/api/auth/me', { token: refreshed.json().accessToken })).statusCode === 401 ? true : undefined), 6000, 'A to see the revocation')
  })
})
