/**
 * "The database is not serving you", produced for real against a real `rekey serve` process on
 * a database and a role created for this run (never the shared database): ALLOW_CONNECTIONS
 * false, a role CONNECTION LIMIT (too many connections), pg_terminate_backend, and a dropped
 * database, over and over. Each answers 503 with Retry-After and ERR_STORE_UNAVAILABLE, never
 * 500, and the process never dies of an unhandled 'error' event; when the database is back,
 * the service is too. Skipped visibly without REKEY_TEST_POSTGRES_URL.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'
import { openStore } from '../../src/store/open.ts'
import { newCredentials, post, startServe, until, type ServeProc } from '../multi-instance/cluster.ts'
import { POSTGRES_URL, REQUIRE_POSTGRES, adminQuery } from './support/stores.ts'

const skip = POSTGRES_URL === '' && !REQUIRE_POSTGRES ? 'REKEY_TEST_POSTGRES_URL is not set; PostgreSQL outage tests skipped' : false

describe('PostgreSQL not serving: rekey serve answers 503 and survives', { skip }, () => {
  const name = `rekey_out_${randomBytes(5).toString('hex')}`
  let url: string
  let server: ServeProc
  let dir: string
  const creds = newCredentials()

  /** A login attempt: its status, Retry-After and error code. */
  async function login(): Promise<{ status: number, retryAfter: string | null, error?: string }> {
    let res: Response
    try {
      res = await post(`${server.url}/api/auth/login`, creds)
    } catch (err) {
      // A connection closed without an answer: name what the process said and whether it died.
      await new Promise((resolve) => setTimeout(resolve, 200))
      throw new Error(`login got no answer (${(err as Error).message}; rekey serve exit ${server.child.exitCode} ${server.child.signalCode}): ${server.stderr.join('').slice(-3000)}`)
    }
    const body = await res.json().catch(() => ({})) as { error?: string }
    return { status: res.status, retryAfter: res.headers.get('retry-after'), ...(body.error === undefined ? {} : { error: body.error }) }
  }

  const terminate = (): Promise<unknown> => adminQuery('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()', [name])

  async function assertUnavailable(what: string): Promise<void> {
    const r = await login()
    assert.deepEqual({ status: r.status, error: r.error }, { status: 503, error: 'ERR_STORE_UNAVAILABLE' }, what)
    assert.match(r.retryAfter ?? '', /^\d+$/, `${what}: Retry-After`)
  }

  async function assertServing(what: string, status = 200): Promise<void> {
    await until(async () => (await login()).status === status, 15_000, `${what}: login answers ${status} again`, 100)
  }

  function assertAlive(): void {
    assert.equal(server.child.exitCode, null, `rekey serve died: ${server.stderr.join('').slice(-2000)}`)
    assert.doesNotMatch(server.stderr.join(''), /Unhandled 'error' event|uncaughtException|ERR_UNHANDLED_ERROR/)
  }

  before(async () => {
    if (POSTGRES_URL === '') throw new Error('REKEY_REQUIRE_POSTGRES=1 but REKEY_TEST_POSTGRES_URL is not set')
    await adminQuery(`CREATE ROLE ${name} LOGIN`)
    await adminQuery(`CREATE DATABASE ${name} OWNER ${name}`)
    const u = new URL(POSTGRES_URL)
    u.username = name
    u.pathname = `/${name}`
    url = u.toString()
    dir = mkdtempSync(path.join(os.tmpdir(), 'rekey-outage-'))
    server = await startServe({ cwd: dir, env: { REKEY_STORE: url, REKEY_MASTER_KEY: randomBytes(32).toString('base64'), REKEY_LOG_LEVEL: 'error' } })
    assert.equal((await post(`${server.url}/api/auth/register`, creds)).status, 201)
    await assertServing('at start')
  })
  after(async () => {
    await server?.stop()
    await adminQuery(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).catch(() => {})
    await adminQuery(`DROP ROLE IF EXISTS ${name}`).catch(() => {})
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true })
  })

  test('ALLOW_CONNECTIONS false (55000): 503 with Retry-After; back to 200 when allowed again', async () => {
    await adminQuery(`ALTER DATABASE ${name} ALLOW_CONNECTIONS false`)
    try {
      await terminate()
      await assertUnavailable('connections not allowed')
      const ready = await fetch(`${server.url}/api/health/ready`)
      assert.equal(ready.status, 503)
    } finally {
      await adminQuery(`ALTER DATABASE ${name} ALLOW_CONNECTIONS true`)
    }
    await assertServing('connections allowed again')
    assertAlive()
  })

  test('too many connections (53300, a role CONNECTION LIMIT): 503; back when the limit is lifted', async () => {
    await adminQuery(`ALTER ROLE ${name} CONNECTION LIMIT 0`)
    try {
      await terminate()
      await assertUnavailable('connection limit reached')
    } finally {
      await adminQuery(`ALTER ROLE ${name} CONNECTION LIMIT -1`)
    }
    await assertServing('limit lifted')
    assertAlive()
  })

  test('pg_terminate_backend and DROP DATABASE, again and again: never 500, never a crash, serving again each time the database is back', async () => {
    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < 3; i++) {
        // Logins in flight while their connections are cut: each is retried on a fresh
        // connection or answers 503; none is a 500.
        const inFlight = Array.from({ length: 6 }, () => login())
        await terminate()
        for (const r of [...await Promise.all(inFlight), await login()]) {
          assert.ok(r.status === 200 || r.status === 503, `after terminate: ${r.status} ${r.error ?? ''}`)
        }
        assertAlive()
      }
      const during = Array.from({ length: 4 }, () => login())
      await adminQuery(`DROP DATABASE ${name} WITH (FORCE)`)
      for (const r of await Promise.all(during)) assert.ok(r.status === 200 || r.status === 503, `during the drop: ${r.status} ${r.error ?? ''}`)
      await assertUnavailable(`round ${round}: database dropped (3D000)`)
      assert.equal((await fetch(`${server.url}/api/health/ready`)).status, 503)
      await terminate()
      await assertUnavailable(`round ${round}: still dropped`)
      assertAlive()
      // The database comes back (an operator restores it): migrated and empty, so the user is unknown.
      await adminQuery(`CREATE DATABASE ${name} OWNER ${name}`)
      const store = await openStore(url, { max: 1 })
      await store.close()
      await assertServing(`round ${round}: database back`, 401)
      assert.equal((await post(`${server.url}/api/auth/register`, creds)).status, 201)
      await assertServing(`round ${round}: registered again`)
      assertAlive()
    }
    await server.stop()
    assert.equal(server.child.exitCode, 0, 'a clean exit after all that')
  })
})
