/**
 * `rekey rotate-db` and `rekey finalize --secret DATABASE_URL` against a real PostgreSQL that
 * checks passwords: the shared test server trusts every login, so this suite starts its own
 * cluster (initdb --auth=scram-sha-256, a free port, a temp directory) and stops it afterwards.
 * Runs when REKEY_TEST_POSTGRES_URL is set (skipped, visibly, otherwise); with
 * REKEY_REQUIRE_POSTGRES=1 a cluster that cannot start is a failure.
 */
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { chownSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'
import pg from 'pg'
import { loadConfig } from '../../src/config/load.ts'
import { openAuditTrail } from '../../src/ops/rotate-db/audit-trail.ts'
import { finalizeDbRotation } from '../../src/ops/rotate-db/finalize-db.ts'
import { envFileTarget } from '../../src/ops/rotate-db/rotation-state.ts'
import { openStore } from '../../src/store/open.ts'
import { readAll } from '../cli/env-oracles.ts'
import { runCli } from '../cli/helpers.ts'
import { freePort } from '../multi-instance/cluster.ts'

const POSTGRES_URL = process.env.REKEY_TEST_POSTGRES_URL ?? ''
const REQUIRE = process.env.REKEY_REQUIRE_POSTGRES === '1'
const SUPER_PASSWORD = 'super-Secret-4-tests'

function canStartCluster(): string | false {
  if (POSTGRES_URL === '' && !REQUIRE) return 'REKEY_TEST_POSTGRES_URL is not set; PostgreSQL rotate-db tests skipped'
  if (REQUIRE) return false
  try {
    execFileSync('id', ['-u', 'postgres'], { stdio: 'ignore' })
    execFileSync('initdb', ['--version'], { stdio: 'ignore' })
  } catch {
    return 'initdb or the postgres OS user is missing; the scram cluster cannot start'
  }
  return process.getuid?.() === 0 ? false : 'not root: cannot run initdb as the postgres user'
}

/** A throwaway PostgreSQL cluster that checks passwords (scram-sha-256). */
class ScramCluster {
  readonly dir = mkdtempSync(path.join(os.tmpdir(), 'rekey-pg-'))
  port = 0
  #started = false

  async start(): Promise<void> {
    const uid = Number(execFileSync('id', ['-u', 'postgres']).toString().trim())
    chownSync(this.dir, uid, uid)
    writeFileSync(path.join(this.dir, 'pw'), SUPER_PASSWORD)
    chownSync(path.join(this.dir, 'pw'), uid, uid)
    this.port = await freePort()
    const asPostgres = (cmd: string, args: string[]): void => {
      execFileSync('runuser', ['-u', 'postgres', '--', cmd, ...args], { stdio: ['ignore', 'ignore', 'pipe'], timeout: 60_000 })
    }
    asPostgres('initdb', ['-D', path.join(this.dir, 'data'), '--auth=scram-sha-256', `--pwfile=${path.join(this.dir, 'pw')}`, '-U', 'postgres', '-E', 'UTF8', '--locale=C', '--no-sync'])
    asPostgres('pg_ctl', ['-D', path.join(this.dir, 'data'), '-l', path.join(this.dir, 'log'), '-w', '-t', '30', 'start',
      '-o', `-p ${this.port} -k ${this.dir} -c listen_addresses=127.0.0.1 -c fsync=off -c shared_buffers=16MB -c max_connections=30`])
    this.#started = true
  }

  url(user: string, password: string, db = 'postgres'): string {
    return `postgres://${user}:${password}@127.0.0.1:${this.port}/${db}`
  }

  stop(): void {
    try {
      if (this.#started) execFileSync('runuser', ['-u', 'postgres', '--', 'pg_ctl', '-D', path.join(this.dir, 'data'), '-m', 'immediate', '-w', 'stop'], { stdio: 'ignore', timeout: 30_000 })
    } finally {
      rmSync(this.dir, { recursive: true, force: true })
    }
  }
}

/** Logs in with `url`; the session user, or the error message of a refused login. */
async function login(url: string): Promise<{ user?: string, error?: string, items?: number }> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5000 })
  try {
    await client.connect()
    const { rows } = await client.query<{ u: string, n: number }>('SELECT session_user AS u, (SELECT count(*)::int FROM items) AS n')
    return { user: rows[0]?.u, items: rows[0]?.n }
  } catch (err) {
    return { error: (err as Error).message }
  } finally {
    await client.end().catch(() => {})
  }
}

const skip = canStartCluster()

describe('rekey rotate-db on a PostgreSQL that checks passwords', { skip }, () => {
  const cluster = new ScramCluster()
  let admin: string
  let work: string
  let envFile: string
  const env = (): Record<string, string> => ({ REKEY_DB_ADMIN_URL: admin })

  before(async () => {
    try {
      await cluster.start()
    } catch (err) {
      cluster.stop()
      throw err
    }
    admin = cluster.url('postgres', SUPER_PASSWORD)
    const client = new pg.Client(admin)
    await client.connect()
    await client.query(`
      CREATE ROLE app NOLOGIN;
      CREATE TABLE items (id int);
      INSERT INTO items VALUES (1), (2);
      ALTER TABLE items OWNER TO app;
      CREATE ROLE app_blue LOGIN PASSWORD 'blue-original-pw' IN ROLE app;
      CREATE ROLE shop LOGIN PASSWORD 'shop-original-pw';
      CREATE TABLE shop_orders (id int);
      ALTER TABLE shop_orders OWNER TO shop;
      CREATE VIEW shop_items AS SELECT 1`)
    await client.end()
    work = mkdtempSync(path.join(os.tmpdir(), 'rekey-rotate-db-'))
    envFile = path.join(work, '.env')
    writeFileSync(envFile, `# the app's database\nDATABASE_URL=${cluster.url('app_blue', 'blue-original-pw')}?application_name=web\nJWT_SECRET=${'k'.repeat(64)}\n`, { mode: 0o600 })
  })
  after(() => {
    cluster.stop()
    if (work !== undefined) rmSync(work, { recursive: true, force: true })
  })

  // Every reading of the rewritten file agrees in rekey's parser, Node's and dotenv's (issue 10, item 1).
  const vars = (): Record<string, string> => readAll(envFile)
  let firstGreenUrl = ''

  test('rotate: app_green gets a new password and the grants, the URL is tested and written; app_blue keeps working', async () => {
    const { code, stdout, stderr } = await runCli(['--env-file', envFile, 'rotate-db', '--var', 'DATABASE_URL'], env())
    assert.equal(code, 0, stderr)
    const after = vars()
    firstGreenUrl = after.DATABASE_URL ?? ''
    const url = new URL(firstGreenUrl)
    assert.equal(url.username, 'app_green')
    assert.ok(url.password.length >= 43 && /^[A-Za-z0-9_-]+$/.test(url.password), 'a strong URL-safe password')
    assert.equal(url.searchParams.get('application_name'), 'web', 'parameters kept')
    assert.equal(after.DATABASE_URL_PREVIOUS_USER, 'app_blue')
    assert.ok(Date.parse(after.DATABASE_URL_FINALIZE_AFTER ?? '') - Date.parse(after.DATABASE_URL_ROTATED_AT ?? '') === 86_400_000)
    assert.match(readFileSync(envFile, 'utf8'), /^# the app's database\n/, 'comments kept')
    assert.equal(statSync(envFile).mode & 0o777, 0o600)
    assert.ok(existsSync(`${envFile}.bak.1`))
    // Output: masked URL, no password of any kind.
    assert.match(stdout, /postgres:\/\/app_green:\*\*\*@127\.0\.0\.1/)
    for (const secret of [url.password, 'blue-original-pw', SUPER_PASSWORD]) assert.ok(!`${stdout}${stderr}`.includes(secret))
    assert.deepEqual(await login(firstGreenUrl), { user: 'app_green', items: 2 })
    assert.deepEqual(await login(cluster.url('app_blue', 'blue-original-pw')), { user: 'app_blue', items: 2 }, 'the old URL works during the delay')
    // Audited in .rekey/rekey.db beside the env file, and in the inventory.
    const store = await openStore(path.join(work, '.rekey', 'rekey.db'))
    try {
      const audit = await store.listAudit()
      assert.equal(audit.at(-1)?.method, 'rotate-db')
      assert.equal(audit.at(-1)?.secret, 'DATABASE_URL')
      assert.match(audit.at(-1)?.notes ?? '', /app_blue -> app_green/)
      assert.ok(!JSON.stringify(audit).includes(url.password))
      const secret = await store.getSecret('DATABASE_URL')
      assert.equal(secret?.kind, 'database')
      assert.equal(secret?.cadenceDays, 180)
      assert.equal(secret?.lastMethod, 'rotate-db')
    } finally {
      await store.close()
    }
  })

  test('finalize before the delay is refused (exit 1, ERR_UNSAFE); a second rotate before finalize too', async () => {
    const early = await runCli(['--env-file', envFile, 'finalize', '--secret', 'DATABASE_URL'], env())
    assert.equal(early.code, 1)
    assert.match(early.stderr, /ERR_UNSAFE: "app_blue" may still be in use until/)
    const again = await runCli(['--env-file', envFile, 'rotate-db'], env())
    assert.equal(again.code, 1)
    assert.match(again.stderr, /ERR_UNSAFE: .*not finalized/)
    assert.equal((await login(cluster.url('app_blue', 'blue-original-pw'))).user, 'app_blue')
  })

  test('after the delay (frozen clock) finalize refuses while app_blue has open sessions, then disables its login', async () => {
    const trail = await openAuditTrail(loadConfig({ env: {}, flags: { store: path.join(work, '.rekey', 'rekey.db') }, scope: 'command' }), 'tester')
    const target = envFileTarget(envFile, 'DATABASE_URL', trail)
    const later = Date.parse(vars().DATABASE_URL_FINALIZE_AFTER ?? '') + 60_000
    const straggler = new pg.Client(cluster.url('app_blue', 'blue-original-pw'))
    try {
      await straggler.connect()
      await assert.rejects(finalizeDbRotation({ variable: 'DATABASE_URL', adminUrl: admin, target, trail, now: later }),
        (err: Error & { code?: string }) => err.code === 'ERR_UNSAFE' && /1 open session/.test(err.message))
      await straggler.end()
      const result = await finalizeDbRotation({ variable: 'DATABASE_URL', adminUrl: admin, target, trail, now: later })
      assert.equal(result.disabledUser, 'app_blue')
      assert.equal((await trail.store.listAudit()).at(-1)?.method, 'finalize-db')
    } finally {
      await straggler.end().catch(() => {})
      await trail.store.close()
    }
    assert.match((await login(cluster.url('app_blue', 'blue-original-pw'))).error ?? '', /not permitted to log in/)
    assert.equal((await login(firstGreenUrl)).user, 'app_green')
    assert.equal(vars().DATABASE_URL_PREVIOUS_USER, undefined)
    assert.ok(vars().DATABASE_URL_ROTATED_AT !== undefined, 'the rotation date stays')
  })

  test('a second rotation goes back to app_blue with a new password; finalize --force disables app_green', async () => {
    const { code, stderr } = await runCli(['--env-file', envFile, 'rotate-db', '--delay', '1h'], env())
    assert.equal(code, 0, stderr)
    const blueUrl = vars().DATABASE_URL ?? ''
    assert.equal(new URL(blueUrl).username, 'app_blue')
    assert.notEqual(new URL(blueUrl).password, 'blue-original-pw')
    assert.equal((await login(blueUrl)).user, 'app_blue')
    assert.match((await login(cluster.url('app_blue', 'blue-original-pw'))).error ?? '', /password authentication failed/)
    const forced = await runCli(['--env-file', envFile, 'finalize', '--secret', 'DATABASE_URL', '--force'], env())
    assert.equal(forced.code, 0, forced.stderr)
    assert.match(forced.stdout, /app_green can no longer log in/)
    assert.match((await login(firstGreenUrl)).error ?? '', /not permitted to log in/)
    assert.equal((await login(blueUrl)).user, 'app_blue')
    const nothing = await runCli(['--env-file', envFile, 'finalize', '--secret', 'DATABASE_URL'], env())
    assert.equal(nothing.code, 0)
    assert.match(nothing.stdout, /nothing to do/)
  })

  test('a wrong admin password: exit 2, a masked URL and PostgreSQL\'s reason, nothing written', async () => {
    const before = readFileSync(envFile, 'utf8')
    const wrong = cluster.url('postgres', 'Wrong-admin-pw-123')
    const { code, stdout, stderr } = await runCli(['--env-file', envFile, 'rotate-db', '--admin-url', wrong], {})
    assert.equal(code, 2)
    assert.match(stderr, /ERR_CONFIG: cannot connect with --admin-url \(postgres:\/\/postgres:\*\*\*@127\.0\.0\.1:\d+\/postgres\): password authentication failed/)
    assert.ok(!`${stdout}${stderr}`.includes('Wrong-admin-pw-123'))
    assert.equal(readFileSync(envFile, 'utf8'), before)
  })

  test('store mode, first run from a plain owner user: shop -> shop_blue sealed in the store; finalize makes shop the NOLOGIN group role', async () => {
    const store = path.join(work, 'managed.db')
    const shopUrl = cluster.url('shop', 'shop-original-pw')
    const base = { REKEY_DB_ADMIN_URL: admin, DATABASE_URL: shopUrl, REKEY_MASTER_KEY: Buffer.alloc(32, 7).toString('base64') }
    const { code, stdout, stderr } = await runCli(['--store', store, '--json', 'rotate-db'], base)
    assert.equal(code, 0, stderr)
    const report = JSON.parse(stdout) as { user: string, appRole: string, previousUser: string, createdUser: boolean, url: string }
    assert.deepEqual([report.user, report.appRole, report.previousUser, report.createdUser], ['shop_blue', 'shop', 'shop', true])
    assert.match(report.url, /^postgres:\/\/shop_blue:\*\*\*@/)
    const trail = await openAuditTrail(loadConfig({ env: base, flags: { store }, scope: 'command' }), 'tester')
    let newUrl: string
    try {
      const sealed = await trail.store.getSetting('secret.DATABASE_URL')
      assert.ok(sealed !== null && sealed.startsWith('v1.'))
      const { storeTarget } = await import('../../src/ops/rotate-db/rotation-state.ts')
      newUrl = await storeTarget(trail, 'DATABASE_URL', {}).readCurrentUrl() ?? ''
      assert.ok(!sealed.includes(new URL(newUrl).password))
      assert.equal((await trail.store.listAudit()).at(-1)?.method, 'rotate-db')
    } finally {
      await trail.store.close()
    }
    const client = new pg.Client(newUrl)
    await client.connect()
    const { rows } = await client.query<{ n: number }>('SELECT count(*)::int AS n FROM shop_orders')
    assert.equal(rows[0]?.n, 0, 'shop_blue has the owner\'s grants')
    await client.end()
    const forced = await runCli(['--store', store, 'finalize', '--secret', 'DATABASE_URL', '--force'], base)
    assert.equal(forced.code, 0, forced.stderr)
    const shop = new pg.Client(shopUrl)
    await assert.rejects(shop.connect(), /not permitted to log in/)
    await shop.end().catch(() => {})
  })
})
