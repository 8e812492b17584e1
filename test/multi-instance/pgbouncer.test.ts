/**
 * The store through PgBouncer in transaction mode (Debian's `pgbouncer`, started here on a
 * free port, stopped afterwards): two real `rekey serve` processes whose pools go through the
 * pooler and whose LISTEN connection goes direct (REKEY_STORE_LISTEN_URL). Migrations,
 * login, one-round-trip refreshes, logout-all reaching the other instance, and `rekey
 * emergency` all work; the start log states the connection budget.
 */
import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { after, before, describe, test } from 'node:test'
import pg from 'pg'
import { freePort, me, post, runRekey, signUp, startServe, type ServeProc } from './cluster.ts'
import { POSTGRES_URL, REQUIRE_POSTGRES, adminQuery } from '../store/support/stores.ts'

const PGBOUNCER = ['/usr/sbin/pgbouncer', '/usr/bin/pgbouncer'].find((p) => existsSync(p))
const skip = POSTGRES_URL === '' && !REQUIRE_POSTGRES
  ? 'REKEY_TEST_POSTGRES_URL is not set'
  : PGBOUNCER === undefined ? 'pgbouncer is not installed (apt-get install pgbouncer; .ci/run does)' : false

describe('through PgBouncer in transaction mode', { skip }, () => {
  const database = `rekey_pgb_${randomBytes(5).toString('hex')}`
  const masterKey = randomBytes(32).toString('base64')
  let dir: string
  let bouncer: ChildProcess
  let viaBouncer: string
  let direct: string
  let env: Record<string, string>
  const servers: ServeProc[] = []

  before(async () => {
    await adminQuery(`CREATE DATABASE ${database}`)
    dir = mkdtempSync(join(tmpdir(), 'rekey-pgbouncer-'))
    chmodSync(dir, 0o755) // pgbouncer refuses to run as root: it runs as postgres and reads these
    const upstream = new URL(POSTGRES_URL)
    const port = await freePort()
    writeFileSync(join(dir, 'userlist.txt'), `"${decodeURIComponent(upstream.username) || 'postgres'}" ""\n`, { mode: 0o644 })
    writeFileSync(join(dir, 'pgbouncer.ini'), [
      '[databases]',
      `${database} = host=${upstream.hostname} port=${upstream.port || '5432'} dbname=${database}`,
      '[pgbouncer]',
      'listen_addr = 127.0.0.1',
      `listen_port = ${port}`,
      'unix_socket_dir =',
      'auth_type = trust',
      `auth_file = ${join(dir, 'userlist.txt')}`,
      'pool_mode = transaction',
      'default_pool_size = 4',
      'max_client_conn = 200',
      // Startup parameters node-postgres sends; set statement_timeout on the role behind a pooler.
      'ignore_startup_parameters = extra_float_digits,statement_timeout,options',
      '',
    ].join('\n'), { mode: 0o644 })
    bouncer = spawn(PGBOUNCER as string, ['-u', 'postgres', join(dir, 'pgbouncer.ini')], { stdio: ['ignore', 'ignore', 'pipe'] })
    let err = ''
    bouncer.stderr?.on('data', (c: Buffer) => { err += c.toString() })
    const url = new URL(POSTGRES_URL)
    url.port = String(port)
    url.pathname = `/${database}`
    viaBouncer = url.toString()
    const d = new URL(POSTGRES_URL)
    d.pathname = `/${database}`
    direct = d.toString()
    for (let i = 0; ; i++) {
      const client = new pg.Client({ connectionString: viaBouncer, connectionTimeoutMillis: 1000 })
      client.on('error', () => {})
      const ok = await client.connect().then(() => client.query('SELECT 1')).then(() => true, () => false)
      await client.end().catch(() => {})
      if (ok) break
      if (i > 100 || bouncer.exitCode !== null) throw new Error(`pgbouncer did not start: ${err}`)
      await sleep(100)
    }
    env = { REKEY_STORE: viaBouncer, REKEY_STORE_LISTEN_URL: direct, REKEY_STORE_POOL_SIZE: '3', REKEY_REFRESH_OVERLAP: '0', REKEY_MASTER_KEY: masterKey }
  })

  after(async () => {
    await Promise.allSettled(servers.map((s) => s.stop()))
    if (bouncer !== undefined && bouncer.exitCode === null) {
      const exited = new Promise((resolve) => bouncer.once('exit', resolve))
      bouncer.kill('SIGTERM')
      await exited
    }
    rmSync(dir, { recursive: true, force: true })
    await adminQuery(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`)
  })

  test('two instances serve, refresh, revoke across instances and survive an emergency', { timeout: 60_000 }, async () => {
    const a = await startServe({ cwd: dir, env: { ...env, REKEY_LOG_LEVEL: 'info' } })
    servers.push(a)
    const b = await startServe({ cwd: dir, env })
    servers.push(b)
    assert.match(a.stdout.join('') + a.stderr.join(''), /store connection budget: up to 4 PostgreSQL connections \(pool 3 \+ 1 LISTEN on REKEY_STORE_LISTEN_URL\)/)

    const user = await signUp(a.url)
    let refreshToken = user.refreshToken
    for (let i = 0; i < 3; i++) {
      const res = await post(`${i % 2 === 0 ? b.url : a.url}/api/auth/refresh`, { refreshToken })
      assert.equal(res.status, 200, await res.clone().text())
      ;({ refreshToken } = await res.json() as { refreshToken: string })
    }
    // Reuse of an old token ends the family, through the pooler too.
    assert.equal((await post(`${a.url}/api/auth/refresh`, { refreshToken: user.refreshToken })).status, 401)
    assert.equal((await post(`${a.url}/api/auth/refresh`, { refreshToken })).status, 401, 'the family ended')

    const other = await signUp(b.url)
    assert.equal((await me(b.url, other.accessToken)).status, 200)
    assert.equal((await me(a.url, other.accessToken)).status, 200)
    assert.equal((await post(`${b.url}/api/auth/logout-all`, {}, other.accessToken)).status, 204)
    const started = Date.now()
    while ((await me(a.url, other.accessToken)).status !== 401) {
      assert.ok(Date.now() - started < 1000, 'A refuses within a second: its LISTEN connection goes direct')
      await sleep(20)
    }

    const third = await signUp(a.url)
    const r = await runRekey(['--json', 'emergency', '--reason', 'drill through the pooler'], { cwd: dir, env })
    assert.equal(r.code, 0, r.stderr)
    assert.ok((JSON.parse(r.stdout) as { sessionsEnded: number }).sessionsEnded >= 1)
    const refused = Date.now()
    for (const url of [a.url, b.url]) {
      while ((await me(url, third.accessToken)).status !== 401) {
        assert.ok(Date.now() - refused < 1000, 'every instance refuses the old token within a second')
        await sleep(20)
      }
    }
  })
})
