/**
 * Outages (issue 12, item 7): a user who logged in or refreshed on an instance is in that
 * instance's cache, so their access tokens keep verifying there while the store is down, with
 * no `/me` call before the outage. The outage is real: the instance reaches PostgreSQL
 * through a TCP relay that the test cuts.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { createServer, connect, type Socket } from 'node:net'
import { describe, test } from 'node:test'
import { adminQuery, POSTGRES_URL, REQUIRE_POSTGRES } from '../store/support/stores.ts'
import { urlWithSchema } from '../multi-instance/cluster.ts'
import { credentials, testServer } from './support.ts'

const skip = POSTGRES_URL === '' && !REQUIRE_POSTGRES ? 'REKEY_TEST_POSTGRES_URL is not set; outage test skipped' : false

/** A TCP relay to PostgreSQL; `cut()` closes it and every connection through it. */
async function relay(target: URL): Promise<{ url: string, cut(): Promise<void> }> {
  const sockets = new Set<Socket>()
  const server = createServer((client) => {
    const upstream = connect(Number(target.port || 5432), target.hostname)
    for (const s of [client, upstream]) {
      sockets.add(s)
      s.on('error', () => {})
      s.on('close', () => sockets.delete(s))
    }
    client.pipe(upstream).pipe(client)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as { port: number }).port
  const url = new URL(target.href)
  url.hostname = '127.0.0.1'
  url.port = String(port)
  return {
    url: url.href,
    async cut() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()))
      for (const s of sockets) s.destroy()
      await closed
    },
  }
}

describe('tokens keep verifying while the store is down', { skip }, () => {
  test('after login and after refresh, without any /me call before the outage', async () => {
    if (POSTGRES_URL === '') throw new Error('REKEY_REQUIRE_POSTGRES=1 but REKEY_TEST_POSTGRES_URL is not set')
    const schema = `rekey_outage_${randomBytes(6).toString('hex')}`
    await adminQuery(`CREATE SCHEMA ${schema}`)
    const link = await relay(new URL(POSTGRES_URL))
    const server = await testServer({ env: { REKEY_STORE: urlWithSchema(link.url, schema), REKEY_MASTER_KEY: randomBytes(32).toString('base64') } })
    try {
      const loggedIn = credentials()
      const refreshed = credentials()
      for (const c of [loggedIn, refreshed]) assert.equal((await server.request('POST', '/api/auth/register', { body: c })).statusCode, 201)
      // Start from an empty cache (registration caches nothing; this rules out anything earlier).
      server.service.revocations.invalidateUsers()
      const second = (await server.request('POST', '/api/auth/login', { body: refreshed })).json() as { refreshToken: string }
      server.service.revocations.invalidateUsers() // only the refresh below may cache this user
      const third = (await server.request('POST', '/api/auth/refresh', { body: { refreshToken: second.refreshToken } })).json() as { accessToken: string }
      const first = (await server.request('POST', '/api/auth/login', { body: loggedIn })).json() as { accessToken: string }

      await link.cut()
      assert.equal((await server.request('GET', '/api/health/ready')).statusCode, 503, 'the store is really down')
      for (const token of [first.accessToken, third.accessToken]) {
        const res = await server.request('GET', '/api/auth/me', { token })
        assert.equal(res.statusCode, 200, res.body)
      }
      const stranger = await server.request('POST', '/api/auth/login', { body: credentials() })
      assert.equal(stranger.statusCode, 503, 'what needs the store answers 503, not 500')
    } finally {
      await server.stop()
      await adminQuery(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).catch(() => {})
    }
  })
})
