/**
 * A wrong password is "the database is not serving you" too (SQLSTATE 28P01): on a
 * scram-sha-256 cluster this test starts itself (initdb and pg_ctl as the postgres user, a
 * free port, stopped afterwards), `rekey serve` answers 503 with Retry-After once its role's
 * password changes, the CLI exits with ERR_STORE_UNAVAILABLE, neither prints the password,
 * and the service serves again when the password is right again. Skipped visibly where
 * initdb or the postgres user is missing, or without REKEY_TEST_POSTGRES_URL.
 */
import assert from 'node:assert/strict'
import { execFileSync, spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { chmodSync, chownSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'
import { freePort, newCredentials, post, startServe, until, type ServeProc } from '../multi-instance/cluster.ts'
import { runCli } from '../cli/helpers.ts'
import { POSTGRES_URL, REQUIRE_POSTGRES, queryOnce } from './support/stores.ts'

const PG_BIN = '/usr/lib/postgresql/15/bin'
const hasTools = spawnSync('id', ['postgres']).status === 0 && spawnSync(path.join(PG_BIN, 'initdb'), ['--version']).status === 0
const skip = (POSTGRES_URL === '' && !REQUIRE_POSTGRES) ? 'REKEY_TEST_POSTGRES_URL is not set; PostgreSQL tests skipped'
  : !hasTools ? 'initdb or the postgres user is missing: the scram-sha-256 cluster cannot be started' : false

const asPostgres = (cmd: string, args: string[]): string => execFileSync('runuser', ['-u', 'postgres', '--', path.join(PG_BIN, cmd), ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })

describe('PostgreSQL with a wrong password (scram-sha-256)', { skip }, () => {
  let dir: string
  let port: number
  let server: ServeProc | undefined
  const superPassword = `super-${randomBytes(8).toString('hex')}`
  const rightPassword = `right-${randomBytes(8).toString('hex')}`
  const wrongPassword = `wrong-${randomBytes(8).toString('hex')}`
  const creds = newCredentials()

  const superQuery = async (sql: string): Promise<void> => { await queryOnce({ host: '127.0.0.1', port, user: 'postgres', password: superPassword, database: 'postgres' }, sql) }

  before(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'rekey-scram-'))
    chmodSync(dir, 0o755)
    chownSync(dir, Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' })), Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' })))
    const pwfile = path.join(dir, 'pw')
    writeFileSync(pwfile, `${superPassword}\n`, { mode: 0o644 })
    asPostgres('initdb', ['-D', path.join(dir, 'data'), '--auth=scram-sha-256', '--username=postgres', `--pwfile=${pwfile}`, '--no-sync'])
    rmSync(pwfile)
    port = await freePort()
    asPostgres('pg_ctl', ['-D', path.join(dir, 'data'), '-l', path.join(dir, 'log'), '-w', '-o', `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off`, 'start'])
    await superQuery(`CREATE ROLE rekey LOGIN PASSWORD '${rightPassword}'`)
    await superQuery('CREATE DATABASE rekey OWNER rekey')
  })
  after(async () => {
    await server?.stop()
    if (dir !== undefined) {
      try {
        asPostgres('pg_ctl', ['-D', path.join(dir, 'data'), '-m', 'immediate', 'stop'])
      } catch { /* not started */ }
      rmSync(dir, { recursive: true, force: true })
    }
  })

  test('serve answers 503 (not 500) once the password is wrong, the CLI exits ERR_STORE_UNAVAILABLE, no password is printed; right again, it serves', async () => {
    const url = (password: string): string => `postgres://rekey:${password}@127.0.0.1:${port}/rekey`
    const env = { REKEY_MASTER_KEY: randomBytes(32).toString('base64') }
    server = await startServe({ cwd: dir, env: { ...env, REKEY_STORE: url(rightPassword), REKEY_LOG_LEVEL: 'error' } })
    assert.equal((await post(`${server.url}/api/auth/register`, creds)).status, 201)
    assert.equal((await post(`${server.url}/api/auth/login`, creds)).status, 200)

    // The role's password changes under the running service (a rotation done elsewhere).
    await superQuery(`ALTER ROLE rekey PASSWORD '${wrongPassword}'`)
    await superQuery("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'rekey'")
    const res = await post(`${server.url}/api/auth/login`, creds)
    assert.equal(res.status, 503)
    assert.match(res.headers.get('retry-after') ?? '', /^\d+$/)
    assert.equal((await res.json() as { error: string }).error, 'ERR_STORE_UNAVAILABLE')
    assert.equal((await fetch(`${server.url}/api/health/ready`)).status, 503)

    const cli = await runCli(['--store', url(rightPassword), 'status'], env)
    assert.equal(cli.code, 1, cli.stderr)
    assert.match(cli.stderr, /^rekey: ERR_STORE_UNAVAILABLE: .*(authentication failed|password)/)
    for (const text of [cli.stdout, cli.stderr, server.stdout.join(''), server.stderr.join('')]) {
      assert.ok(!text.includes(rightPassword) && !text.includes(wrongPassword) && !text.includes(superPassword), 'no password printed')
    }

    await superQuery(`ALTER ROLE rekey PASSWORD '${rightPassword}'`)
    await until(async () => (await post(`${server!.url}/api/auth/login`, creds)).status === 200, 15_000, 'serving again', 100)
    assert.equal(server.child.exitCode, null, 'still running')
  })
})
