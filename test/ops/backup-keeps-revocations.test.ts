/**
 * A restore never revives what was cut after the backup (real CLI processes, real SQLite and
 * PostgreSQL, the real service answering the tokens): a backup from before an emergency, restored with
 * --force, keeps the revoked keys revoked and the not-before; a session ended after the
 * backup stays ended. Every restore leaves a `restore` row in the restored store's audit log.
 */
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import path from 'node:path'
import { describe, test } from 'node:test'
import { NOT_BEFORE_SETTING } from '../../src/service/auth/revocations.ts'
import { openStore } from '../../src/store/open.ts'
import { runBin, tempDir } from '../cli/helpers.ts'
import { credentials, testServer, type TestServer } from '../http/support.ts'
import { urlWithSchema } from '../multi-instance/cluster.ts'
import { POSTGRES_URL, REQUIRE_POSTGRES, adminQuery, freshSchema } from '../store/support/stores.ts'

const PASSPHRASE = 'correct-horse-battery-staple-42'

type Dialect = 'sqlite' | 'postgres'
const DIALECTS: ReadonlyArray<[Dialect, string | false]> = [
  ['sqlite', false],
  ['postgres', POSTGRES_URL === '' && !REQUIRE_POSTGRES ? 'REKEY_TEST_POSTGRES_URL is not set' : false],
]

interface Session { accessToken: string, refreshToken: string }

async function signIn(server: TestServer): Promise<Session> {
  const creds = credentials()
  assert.equal((await server.request('POST', '/api/auth/register', { body: creds })).statusCode, 201)
  const login = await server.request('POST', '/api/auth/login', { body: creds })
  assert.equal(login.statusCode, 200, login.body)
  return login.json() as Session
}

/** A store served once (keys made, two users signed in), then stopped; a backup of it through the CLI. */
async function servedAndBackedUp(t: Parameters<typeof tempDir>[0] & { after: (fn: () => Promise<void>) => void }, dialect: Dialect): Promise<{ dir: string, storePath: string, env: Record<string, string>, archive: string, a: Session, b: Session, server: () => Promise<TestServer> }> {
  const dir = tempDir(t)
  let storePath = path.join(dir, 'store', 'rekey.db')
  if (dialect === 'postgres') {
    const schema = freshSchema()
    await adminQuery(`CREATE SCHEMA ${schema}`)
    t.after(async () => { await adminQuery(`DROP SCHEMA IF EXISTS ${schema} CASCADE`) })
    storePath = urlWithSchema(POSTGRES_URL, schema)
  }
  const env = { REKEY_STORE: storePath, REKEY_MASTER_KEY: randomBytes(32).toString('base64'), REKEY_BACKUP_PASSPHRASE: PASSPHRASE, REKEY_SCHEDULER: 'off' }
  const server = (): Promise<TestServer> => testServer({ dir, env })
  const first = await server()
  const a = await signIn(first)
  const b = await signIn(first)
  await first.close()
  const backup = await runBin(['backup', '--out', path.join(dir, 'backups'), '--json'], { cwd: dir, env })
  assert.equal(backup.code, 0, backup.stderr)
  const archive = (JSON.parse(backup.stdout) as { file: string }).file
  return { dir, storePath, env, archive, a, b, server }
}

async function refresh(server: TestServer, session: Session): Promise<{ statusCode: number, error: string | undefined }> {
  const res = await server.request('POST', '/api/auth/refresh', { body: { refreshToken: session.refreshToken } })
  return { statusCode: res.statusCode, error: (res.json() as { error?: string }).error }
}

for (const [dialect, skip] of DIALECTS) describe(`restore keeps what the replaced store cut (${dialect}, real CLI)`, { skip }, () => {
  test('a backup from before an emergency: the revoked keys stay revoked, the not-before stays, new keys sign; a warning names the kids', async (t) => {
    const { dir, storePath, env, archive, a, server } = await servedAndBackedUp(t, dialect)
    const before = await openStore(storePath)
    const oldKids = (await before.listKeys()).filter((k) => k.state === 'current').map((k) => k.kid).sort()
    await before.close()
    assert.equal(oldKids.length, 2, 'an access and a refresh key')

    const emergency = await runBin(['emergency', '--reason', 'leaked in a screenshot'], { cwd: dir, env })
    assert.equal(emergency.code, 0, emergency.stderr)
    const cut = await openStore(storePath)
    const notBefore = await cut.getSetting(NOT_BEFORE_SETTING)
    await cut.close()
    assert.ok(notBefore !== null)

    const refused = await runBin(['restore', archive], { cwd: dir, env })
    assert.equal(refused.code, 1, refused.stderr)
    assert.match(refused.stderr, /ERR_UNSAFE: the store .* holds data .*--force \(its revoked keys, ended sessions and not-before are kept\)/)

    const restored = await runBin(['--operator', 'alice', 'restore', archive, '--force'], { cwd: dir, env })
    assert.equal(restored.code, 0, restored.stderr)
    assert.match(restored.stderr, /^rekey: warning: the backup \(made [^)]+\) predates revocations of the replaced store, which it would have brought back: 2 revoked key\(s\)/)
    for (const kid of oldKids) assert.ok(restored.stderr.includes(kid), `the warning names ${kid}`)
    assert.match(restored.stderr, /current in the backup/)
    assert.match(restored.stderr, new RegExp(`the not-before of ${new Date(Number(notBefore) * 1000).toISOString().replace(/[.]/g, '\\.')}`))
    assert.doesNotMatch(restored.stderr + restored.stdout, /sealed|"k":|PRIVATE/i, 'no key material')

    const store = await openStore(storePath)
    const keys = await store.listKeys()
    for (const kid of oldKids) assert.equal(keys.find((k) => k.kid === kid)?.state, 'revoked', `${kid} stays revoked`)
    const current = keys.filter((k) => k.state === 'current')
    assert.deepEqual(current.map((k) => k.purpose).sort(), ['access', 'refresh'], 'each purpose has a key that signs')
    assert.ok(current.every((k) => !oldKids.includes(k.kid)))
    assert.equal(await store.getSetting(NOT_BEFORE_SETTING), notBefore, 'the not-before stays')
    const last = (await store.listAudit()).at(-1)
    await store.close()
    assert.equal(last?.method, 'restore')
    assert.equal(last?.operator, 'alice')
    assert.equal(last?.secret, 'store')
    const hash = createHash('sha256').update(readFileSync(archive)).digest('hex').slice(0, 16)
    assert.match(last?.notes ?? '', new RegExp(`^restored from the backup made \\d{4}-\\d\\d-\\d\\dT[^ ]+Z \\(archive sha256 ${hash}, ${dialect}, schema version \\d+\\); kept from the replaced store: 2 revoked key`))

    const verified = await runBin(['audit', '--verify'], { cwd: dir, env })
    assert.equal(verified.code, 0, `the chain holds the restore row: ${verified.stdout}${verified.stderr}`)

    // What a user sees: the tokens of before the emergency stay refused; a new login works.
    const after = await server()
    try {
      const old = await refresh(after, a)
      assert.equal(old.statusCode, 401)
      assert.equal((await after.request('GET', '/api/auth/me', { token: a.accessToken })).statusCode, 401)
      await signIn(after)
    } finally {
      await after.close()
    }
  })

  test('a session ended after the backup stays ended; the others come back; the restore is audited even with nothing to keep', async (t) => {
    const { dir, env, archive, a, b, server } = await servedAndBackedUp(t, dialect)
    const running = await server()
    assert.equal((await running.request('POST', '/api/auth/logout', { body: { refreshToken: b.refreshToken } })).statusCode, 204)
    await running.close()

    const restored = await runBin(['restore', archive, '--force', '--json'], { cwd: dir, env })
    assert.equal(restored.code, 0, restored.stderr)
    assert.match(restored.stderr, /which it would have brought back: 1 session\(s\) ended since the backup stay ended/)
    assert.deepEqual((JSON.parse(restored.stdout) as { keptRevocations: unknown }).keptRevocations, { keys: [], newKeys: [], notBefore: null, sessions: 1 })

    const after = await server()
    try {
      assert.equal((await refresh(after, b)).statusCode, 401, 'the logged-out session stays ended')
      assert.equal((await refresh(after, a)).statusCode, 200, 'a session live at the backup and never ended comes back')
    } finally {
      await after.close()
    }

    if (dialect === 'postgres') return
    // Into a new location: nothing to keep, no warning, still an audit row.
    const freshPath = path.join(dir, 'fresh', 'rekey.db')
    const into = await runBin(['restore', archive], { cwd: dir, env: { ...env, REKEY_STORE: freshPath } })
    assert.equal(into.code, 0, into.stderr)
    assert.doesNotMatch(into.stderr, /warning/)
    const store = await openStore(freshPath)
    const last = (await store.listAudit()).at(-1)
    await store.close()
    assert.equal(last?.method, 'restore')
    assert.doesNotMatch(last?.notes ?? '', /kept from the replaced store/)
  })
})
