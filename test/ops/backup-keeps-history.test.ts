/**
 * A restore never undoes history or security actions (real CLI processes, real SQLite and
 * PostgreSQL, the real service answering logins): the audit rows written after the backup are
 * carried over (or the restore row says why not), a password changed and an admin removed
 * after the backup stay so, the backup's heartbeats do not come back, and an archive path that
 * is not a file is bad usage (exit 2).
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { rmSync } from 'node:fs'
import path from 'node:path'
import { describe, test } from 'node:test'
import { openStore } from '../../src/store/open.ts'
import { runBin, tempDir } from '../cli/helpers.ts'
import { testServer, type TestServer } from '../http/support.ts'
import { urlWithSchema } from '../multi-instance/cluster.ts'
import { POSTGRES_URL, REQUIRE_POSTGRES, adminQuery, freshSchema } from '../store/support/stores.ts'

const PASSPHRASE = 'correct-horse-battery-staple-42'
const V = { email: 'v@x.io', password: 'the-old-password-of-v-1' }
const FIRED = { email: 'fired@x.io', password: 'the-password-of-fired-1' }

type Dialect = 'sqlite' | 'postgres'
const DIALECTS: ReadonlyArray<[Dialect, string | false]> = [
  ['sqlite', false],
  ['postgres', POSTGRES_URL === '' && !REQUIRE_POSTGRES ? 'REKEY_TEST_POSTGRES_URL is not set' : false],
]

interface Setup {
  dir: string
  storePath: string
  env: Record<string, string>
  server: () => Promise<TestServer>
  /** Empties the store (another lineage starts when it is served again). */
  wipe: () => Promise<void>
  backup: () => Promise<string>
}

async function setUp(t: Parameters<typeof tempDir>[0] & { after: (fn: () => Promise<void>) => void }, dialect: Dialect): Promise<Setup> {
  const dir = tempDir(t)
  let storePath = path.join(dir, 'store', 'rekey.db')
  let wipe = async (): Promise<void> => { rmSync(path.dirname(storePath), { recursive: true, force: true }) }
  if (dialect === 'postgres') {
    const schema = freshSchema()
    await adminQuery(`CREATE SCHEMA ${schema}`)
    t.after(async () => { await adminQuery(`DROP SCHEMA IF EXISTS ${schema} CASCADE`) })
    storePath = urlWithSchema(POSTGRES_URL, schema)
    wipe = async () => { await adminQuery(`DROP SCHEMA ${schema} CASCADE; CREATE SCHEMA ${schema}`) }
  }
  const env = { REKEY_STORE: storePath, REKEY_MASTER_KEY: randomBytes(32).toString('base64'), REKEY_BACKUP_PASSPHRASE: PASSPHRASE, REKEY_SCHEDULER: 'off', FIRED_PW: FIRED.password }
  const backup = async (): Promise<string> => {
    const made = await runBin(['backup', '--out', path.join(dir, 'backups'), '--json'], { cwd: dir, env })
    assert.equal(made.code, 0, made.stderr)
    return (JSON.parse(made.stdout) as { file: string }).file
  }
  return { dir, storePath, env, server: () => testServer({ dir, env }), wipe, backup }
}

async function login(server: TestServer, creds: { email: string, password: string }): Promise<{ statusCode: number, accessToken: string }> {
  const res = await server.request('POST', '/api/auth/login', { body: creds })
  return { statusCode: res.statusCode, accessToken: (res.json() as { accessToken?: string }).accessToken ?? '' }
}

async function auditMethods(storePath: string): Promise<string[]> {
  const store = await openStore(storePath)
  try {
    return (await store.listAudit()).map((r) => r.method)
  } finally {
    await store.close()
  }
}

for (const [dialect, skip] of DIALECTS) describe(`restore keeps history and users' security state (${dialect}, real CLI)`, { skip }, () => {
  test('the audit rows written after the backup are carried over, verbatim, and the chain verifies', async (t) => {
    const { dir, storePath, env, server, backup } = await setUp(t, dialect)
    await (await server()).close()
    const archive = await backup()
    const atBackup = await auditMethods(storePath)
    const emergency = await runBin(['emergency', '--reason', 'leak'], { cwd: dir, env })
    assert.equal(emergency.code, 0, emergency.stderr)
    const written = await auditMethods(storePath)
    const after = written.slice(atBackup.length)
    assert.ok(after.includes('emergency'), `the emergency is audited: ${after.join(',')}`)

    const restored = await runBin(['restore', '--force', archive], { cwd: dir, env })
    assert.equal(restored.code, 0, restored.stderr)
    assert.match(restored.stderr, new RegExp(`rekey: warning: the replaced store's audit log: ${after.length} audit row\\(s\\) written after the backup carried over`))
    assert.deepEqual(await auditMethods(storePath), [...written, 'restore'], 'the history stays, the restore row last')
    const verified = await runBin(['audit', '--verify'], { cwd: dir, env })
    assert.equal(verified.code, 0, `${verified.stdout}${verified.stderr}`)
  })

  test('a replaced store of another lineage: its rows are named as not carried, in the warning and the restore row', async (t) => {
    const { dir, storePath, env, server, wipe, backup } = await setUp(t, dialect)
    await (await server()).close()
    const archive = await backup()
    const atBackup = await auditMethods(storePath)
    await wipe()
    await (await server()).close()
    const other = await auditMethods(storePath)
    assert.ok(other.length > 0)

    const restored = await runBin(['restore', '--force', archive], { cwd: dir, env })
    assert.equal(restored.code, 0, restored.stderr)
    const why = `${other.length} audit row\\(s\\) of the replaced store not carried: its chain diverges from the backup's at row 1 \\(another lineage\\)`
    assert.match(restored.stderr, new RegExp(`rekey: warning: the replaced store's audit log: ${why}`))
    const store = await openStore(storePath)
    const rows = await store.listAudit()
    await store.close()
    assert.deepEqual(rows.map((r) => r.method), [...atBackup, 'restore'])
    assert.match(rows.at(-1)?.notes ?? '', new RegExp(why))
    const verified = await runBin(['audit', '--verify'], { cwd: dir, env })
    assert.equal(verified.code, 0, `${verified.stdout}${verified.stderr}`)
  })

  test('a password changed and an admin removed after the backup stay so; users registered after it are counted', async (t) => {
    const { dir, storePath, env, server, backup } = await setUp(t, dialect)
    const first = await server()
    assert.equal((await first.request('POST', '/api/auth/register', { body: V })).statusCode, 201)
    await first.close()
    const created = await runBin(['admin', 'create', '--email', FIRED.email, '--password-env', 'FIRED_PW'], { cwd: dir, env })
    assert.equal(created.code, 0, created.stderr)
    const archive = await backup()

    const running = await server()
    const v = await login(running, V)
    assert.equal(v.statusCode, 200)
    const newPassword = 'the-new-password-of-v-2'
    assert.equal((await running.request('POST', '/api/auth/password', { token: v.accessToken, body: { currentPassword: V.password, newPassword } })).statusCode, 204)
    const v2 = await login(running, { email: V.email, password: newPassword })
    assert.equal((await running.request('POST', '/api/auth/logout-all', { token: v2.accessToken })).statusCode, 204)
    assert.equal((await running.request('POST', '/api/auth/register', { body: { email: 'late@x.io', password: 'a-password-of-late-3' } })).statusCode, 201)
    await running.close()
    const removed = await runBin(['admin', 'remove', '--email', FIRED.email], { cwd: dir, env })
    assert.equal(removed.code, 0, removed.stderr)

    const restored = await runBin(['restore', '--force', archive], { cwd: dir, env })
    assert.equal(restored.code, 0, restored.stderr)
    assert.match(restored.stderr, /rekey: warning: the replaced store's users changed after the backup, kept: 1 user\(s\) keep the password set after the backup; 1 admin\(s\) removed after the backup stay removed; 2 user\(s\) keep their tokens cut \(logout-all, reset\); 1 user\(s\) registered after the backup are not in it and must register again/)
    assert.doesNotMatch(restored.stderr + restored.stdout, /argon2|\$v=|the-new-password|the-old-password/, 'no hash, no password')

    const after = await server()
    try {
      assert.equal((await login(after, V)).statusCode, 401, 'the old password stays cut')
      assert.equal((await login(after, { email: V.email, password: newPassword })).statusCode, 200, 'the new one signs in')
      assert.equal((await after.request('GET', '/api/auth/me', { token: v2.accessToken })).statusCode, 401, 'tokens cut by logout-all stay cut')
      const fired = await login(after, FIRED)
      assert.equal(fired.statusCode, 200)
      assert.equal(((await after.request('GET', '/api/auth/me', { token: fired.accessToken })).json() as { role: string }).role, 'user', 'the removed admin stays removed')
    } finally {
      await after.close()
    }
    const store = await openStore(storePath)
    const last = (await store.listAudit()).at(-1)
    await store.close()
    assert.match(last?.notes ?? '', /1 admin\(s\) removed after the backup stay removed/)
  })

  test('the backup\'s heartbeats are not restored: status lists no instance, a second restore is not refused', async (t) => {
    const { dir, storePath, env, server, backup } = await setUp(t, dialect)
    const running = await server()
    const archive = await backup() // taken live: it holds the running instance's heartbeat
    await running.close()
    const first = await runBin(['restore', '--force', archive], { cwd: dir, env })
    assert.equal(first.code, 0, first.stderr)
    const store = await openStore(storePath)
    const instances = await store.listInstances(0)
    await store.close()
    assert.deepEqual(instances, [])
    const second = await runBin(['restore', '--force', archive], { cwd: dir, env })
    assert.equal(second.code, 0, second.stderr)
  })

  test('an archive path that is a directory or missing is bad usage (exit 2), named clearly', async (t) => {
    const { dir, env } = await setUp(t, dialect)
    const directory = await runBin(['restore', dir], { cwd: dir, env })
    assert.equal(directory.code, 2, directory.stderr)
    assert.match(directory.stderr, /is a directory: give the path of a rekey-backup-\*\.tgz\.age file/)
    assert.doesNotMatch(directory.stderr, /cannot be decrypted|\n\s+at /)
    const missing = await runBin(['restore', path.join(dir, 'nope.tgz.age')], { cwd: dir, env })
    assert.equal(missing.code, 2, missing.stderr)
    assert.match(missing.stderr, /does not exist/)
  })
})
