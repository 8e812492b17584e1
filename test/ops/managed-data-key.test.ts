/**
 * Managed data keys (`rekey rotate --secret ENCRYPTION_KEY` without an env file), end to end
 * with real processes: an application encrypting a SQLite column through `Cipher.fromStore`
 * keeps writing while the CLI creates the first key, stages and promotes a new one (waiting
 * for the application to load it), counts, rewraps and finalizes, on a SQLite store and on
 * PostgreSQL (its own schema). Oracles: the application's own check of every row against what
 * it last wrote, and a fresh `Cipher.fromStore` in this process.
 */
import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes, type KeyObject } from 'node:crypto'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import { describe, it } from 'node:test'
import { parseEnv } from 'node:util'
import { Cipher } from '../../src/crypt.ts'
import { openStore } from '../../src/store/open.ts'
import { SqlStore } from '../../src/store/sql/sql-store.ts'
import { accessKeysOf, dataKeysOf } from '../../src/service/data-keys/managed-data-keys.ts'
import { runBin, tempDir } from '../cli/helpers.ts'
import { POSTGRES_URL, REQUIRE_POSTGRES, adminQuery, freshSchema } from '../store/support/stores.ts'

const APP = path.resolve(import.meta.dirname, '../support/cipher-app.ts')
const ROWS = 400

/** The application process: its stdout lines, awaited by pattern. */
interface AppProcess {
  readonly child: ChildProcess
  line(pattern: RegExp, timeoutMs?: number): Promise<RegExpExecArray>
  /** Waits for `pattern` in what the app wrote to stderr so far. */
  stderrLine(pattern: RegExp, timeoutMs?: number): Promise<void>
  stop(): Promise<{ rows: number, lost: number, failed: number, writes: number, kids: Record<string, number> }>
}

function startApp(dir: string, env: Record<string, string>, name = 'orders-api'): AppProcess {
  const child = spawn(process.execPath, [APP], { cwd: dir, env: { ...process.env, ...env, APP_DB: path.join(dir, 'app.db'), APP_NAME: name, ROWS: String(ROWS) }, stdio: ['ignore', 'pipe', 'pipe'] })
  const lines: string[] = []
  let stderr = ''
  const waiters: Array<() => void> = []
  let buffer = ''
  child.stderr?.setEncoding('utf8').on('data', (t: string) => { stderr += t })
  child.stdout?.setEncoding('utf8').on('data', (t: string) => {
    buffer += t
    let nl: number
    while ((nl = buffer.indexOf('\n')) >= 0) {
      lines.push(buffer.slice(0, nl))
      buffer = buffer.slice(nl + 1)
    }
    for (const w of waiters.splice(0)) w()
  })
  const exited = new Promise<void>((resolve) => child.on('close', () => resolve()))
  const line = async (pattern: RegExp, timeoutMs = 20_000): Promise<RegExpExecArray> => {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      for (const l of lines) {
        const m = pattern.exec(l)
        if (m !== null) return m
      }
      if (Date.now() > deadline || child.exitCode !== null) throw new Error(`app: no line ${pattern} (lines: ${lines.join(' | ')}; stderr: ${stderr})`)
      await Promise.race([new Promise<void>((resolve) => waiters.push(resolve)), new Promise((resolve) => setTimeout(resolve, 200))])
    }
  }
  const stderrLine = async (pattern: RegExp, timeoutMs = 20_000): Promise<void> => {
    const deadline = Date.now() + timeoutMs
    while (!pattern.test(stderr)) {
      if (Date.now() > deadline || child.exitCode !== null) throw new Error(`app: no stderr ${pattern} (stderr: ${stderr})`)
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
  }
  return {
    child,
    line,
    stderrLine,
    async stop() {
      child.kill('SIGTERM')
      const m = await line(/^\{.*\}$/)
      await exited
      return JSON.parse(m[0]) as Awaited<ReturnType<AppProcess['stop']>>
    },
  }
}

/** The store settings of one kind: a SQLite file in `dir` (its master.key generated), or a fresh PostgreSQL schema. */
async function storeEnv(kind: 'sqlite' | 'postgres', dir: string, t: { after: (fn: () => Promise<void>) => void }): Promise<Record<string, string>> {
  if (kind === 'sqlite') return { REKEY_STORE: path.join(dir, '.rekey', 'rekey.db') }
  const schema = freshSchema()
  t.after(async () => { await adminQuery(`DROP SCHEMA IF EXISTS ${schema} CASCADE`) })
  const url = new URL(POSTGRES_URL)
  url.searchParams.set('options', `-c search_path=${schema}`)
  await adminQuery(`CREATE SCHEMA ${schema}`)
  // The space as %20 (docs/operations.md): pg_dump, which backup runs, does not read '+' as one.
  return { REKEY_STORE: url.toString().replace(/\+/g, '%20'), REKEY_MASTER_KEY: randomBytes(32).toString('base64') }
}

const json = (stdout: string): Record<string, unknown> => JSON.parse(stdout.trim().split('\n').at(-1) as string) as Record<string, unknown>

for (const kind of ['sqlite', 'postgres'] as const) {
  const skip = kind === 'postgres' && POSTGRES_URL === '' && !REQUIRE_POSTGRES ? 'REKEY_TEST_POSTGRES_URL is not set' : false
  describe(`managed ENCRYPTION_KEY, ${kind} store`, { skip }, () => {
    it('creates, stages until the running app decrypts with it, promotes, rewraps under load and finalizes on the counts', async (t) => {
      const dir = tempDir(t)
      const env = await storeEnv(kind, dir, t)
      const cli = (...args: string[]) => runBin(args, { cwd: dir, env })

      let r = await cli('rotate', '--secret', 'ENCRYPTION_KEY')
      assert.equal(r.code, 0, r.stderr)
      const first = /created data key (\S+) \(current\)/.exec(r.stdout)?.[1] as string
      assert.ok(first, r.stdout)

      // On PostgreSQL the application gets only the data-key access key, never the master key.
      let appEnv: Record<string, string> = env
      if (kind === 'postgres') {
        const access = await cli('gen', '--data-key-access')
        assert.equal(access.code, 0, access.stderr)
        assert.match(access.stdout, /^[A-Za-z0-9+/]{43}=\n$/)
        appEnv = { REKEY_STORE: env.REKEY_STORE as string, REKEY_DATA_KEY_ACCESS: access.stdout.trim() }
      }
      const app = startApp(dir, appEnv)
      t.after(() => { app.child.kill('SIGKILL') })
      assert.equal((await app.line(/^ready (\S+)$/))[1], first)
      const appDb = path.join(dir, 'app.db')
      const oldValue = (() => {
        const db = new DatabaseSync(appDb, { readOnly: true })
        try {
          return (db.prepare('SELECT body FROM items WHERE id = 1').get() as { body: string }).body
        } finally {
          db.close()
        }
      })()
      assert.equal(Cipher.kidOf(oldValue), first)

      // Staged, acknowledged by the running app (a cipher instance), promoted.
      r = await cli('--json', 'rotate', '--secret', 'ENCRYPTION_KEY')
      assert.equal(r.code, 0, r.stderr)
      const rotated = json(r.stdout) as { promoted: boolean, everywhere: boolean, changes: { kid: string, from: string, to: string }[], instances: { instanceId: string, acknowledged: boolean }[] }
      assert.equal(rotated.promoted, true)
      assert.equal(rotated.everywhere, true)
      const second = rotated.changes.find((c) => c.to === 'current')?.kid as string
      assert.deepEqual(rotated.changes.map((c) => [c.kid, c.from, c.to]), [[first, 'current', 'previous'], [second, 'next', 'current']])
      assert.ok(rotated.instances.some((i) => i.instanceId.startsWith('cipher:orders-api/') && i.acknowledged), JSON.stringify(rotated.instances))
      await app.line(new RegExp(`^kid ${second}$`))

      // Counted: the old key still holds values, so neither finalize nor --hard may drop it.
      r = await cli('--json', 'rewrap', '--url', appDb, '--table', 'items', '--column', 'body', '--aad-columns', 'id', '--count')
      assert.equal(r.code, 0, r.stderr)
      const counted = json(r.stdout) as { keys: { kid: string, state: string, values: number }[] }
      assert.ok((counted.keys.find((k) => k.kid === first)?.values ?? 0) > 0, r.stdout)
      assert.equal(counted.keys.find((k) => k.kid === first)?.state, 'previous')
      r = await cli('finalize', '--secret', 'ENCRYPTION_KEY')
      assert.equal(r.code, 1, r.stdout)
      assert.match(r.stderr, new RegExp(`ERR_UNSAFE.*items\\.body .* still holds \\d+ value\\(s\\) of data key ${first}`))
      r = await cli('rotate', '--secret', 'ENCRYPTION_KEY', '--hard')
      assert.equal(r.code, 1, r.stdout)
      assert.match(r.stderr, /ERR_UNSAFE: rotate --hard of ENCRYPTION_KEY refused: .*would become unreadable/)
      // A data key is never revoked: its values would become unreadable.
      r = await cli('revoke', first)
      assert.equal(r.code, 1, r.stdout)
      assert.match(r.stderr, /ERR_UNSAFE: .* is a data key/)

      // Rewrap while the application keeps writing.
      r = await cli('--json', 'rewrap', '--url', appDb, '--table', 'items', '--column', 'body', '--aad-columns', 'id')
      assert.equal(r.code, 0, r.stderr)
      const done = json(r.stdout) as { event: string, currentKid: string, failed: number }
      assert.equal(done.event, 'done')
      assert.equal(done.currentKid, second)
      assert.equal(done.failed, 0)
      const checked = await app.stop()
      assert.equal(checked.rows, ROWS)
      assert.equal(checked.lost, 0)
      assert.equal(checked.failed, 0)
      assert.ok(checked.writes > 0)
      assert.deepEqual(checked.kids, { [second]: ROWS })

      r = await cli('finalize', '--secret', 'ENCRYPTION_KEY')
      assert.equal(r.code, 0, r.stderr)
      assert.match(r.stdout, new RegExp(`retired data key ${first}`))
      const status = json((await cli('--json', 'status')).stdout) as { secrets: { secret: string, keys: { kid: string, state: string }[] }[], encryptedColumns: { kids: Record<string, number> }[] }
      assert.deepEqual(status.secrets.find((s) => s.secret === 'data')?.keys.map((k) => [k.kid, k.state]), [[first, 'retired'], [second, 'current']])
      assert.deepEqual(status.encryptedColumns[0]?.kids, { [second]: ROWS })

      // The retired key is refused by name; the current one decrypts what the app wrote.
      const fresh = await Cipher.fromStore(env.REKEY_STORE, { env: { ...env }, name: 'checker' })
      try {
        assert.throws(() => fresh.decrypt(oldValue, { aad: '1' }), { code: 'ERR_KEY_RETIRED' })
        assert.equal(fresh.currentKid, second)
      } finally {
        await fresh.close()
      }
      // Nothing printed any data key's material (the app's plaintexts never reach rekey either).
      const audit = await cli('audit')
      assert.match(audit.stdout, /ENCRYPTION_KEY/)
      assert.doesNotMatch(audit.stdout + audit.stderr, /v0-1\b/)
    })
  })
}

for (const kind of ['sqlite', 'postgres'] as const) {
  const skip = kind === 'postgres' && POSTGRES_URL === '' && !REQUIRE_POSTGRES ? 'REKEY_TEST_POSTGRES_URL is not set' : false
  it(`restore of a backup taken before a data-key rotation keeps the data keys made since (every value still decrypts), ${kind} store`, { skip }, async (t) => {
    const dir = tempDir(t)
    const env: Record<string, string> = { ...await storeEnv(kind, dir, t), REKEY_BACKUP_PASSPHRASE: 'a backup passphrase of some length 42' }
    const cli = (...args: string[]) => runBin(args, { cwd: dir, env })
    const open = () => Cipher.fromStore(env.REKEY_STORE, { env: { ...env }, name: 'checker' })
    assert.equal((await cli('rotate', '--secret', 'ENCRYPTION_KEY')).code, 0)
    let cipher = await open()
    const before = cipher.encrypt('written before the backup', { aad: '1' })
    await cipher.close()
    let r = await cli('backup', '--out', path.join(dir, 'backups'))
    assert.equal(r.code, 0, r.stderr)
    const archive = /wrote (\S+)/.exec(r.stdout)?.[1] as string
    // After the backup: a rotation (the new key encrypts), then a hard one (the older keys revoked).
    r = await cli('--json', 'rotate', '--secret', 'ENCRYPTION_KEY')
    assert.equal(r.code, 0, r.stderr)
    const second = (json(r.stdout) as { created: { kid: string } }).created.kid
    cipher = await open()
    const after = cipher.encrypt('written after the backup', { aad: '2' })
    await cipher.close()

    r = await cli('restore', path.resolve(dir, archive), '--force')
    assert.equal(r.code, 0, r.stderr)
    assert.match(r.stdout + r.stderr, new RegExp(`data key\\(s\\) kept as in the replaced store \\(.*${second} current, made after the backup`))
    cipher = await open()
    try {
      assert.equal(cipher.currentKid, second, 'the applications keep encrypting with the key they used')
      assert.equal(cipher.decrypt(after, { aad: '2' }).toString(), 'written after the backup')
      assert.equal(cipher.decrypt(before, { aad: '1' }).toString(), 'written before the backup')
    } finally {
      await cipher.close()
    }
    // The restored store is consistent: rotation goes on from there.
    r = await cli('--json', 'rotate', '--secret', 'ENCRYPTION_KEY')
    assert.equal(r.code, 0, r.stderr)
    assert.deepEqual((json(r.stdout) as { changes: { kid: string, to: string }[] }).changes.find((c) => c.to === 'previous')?.kid, second)
  })
}

describe('managed ENCRYPTION_KEY: the application side', () => {
  it('a stalled app keeps the new key staged (next) until it has loaded it; rollback follows without a restart', async (t) => {
    const dir = tempDir(t)
    const env = { REKEY_STORE: path.join(dir, '.rekey', 'rekey.db') }
    const cli = (...args: string[]) => runBin(args, { cwd: dir, env })
    const first = /created data key (\S+)/.exec((await cli('rotate', '--secret', 'ENCRYPTION_KEY')).stdout)?.[1] as string
    const app = startApp(dir, env)
    t.after(() => { app.child.kill('SIGKILL') })
    await app.line(/^ready /)

    app.child.kill('SIGSTOP')
    let r = await cli('rotate', '--secret', 'ENCRYPTION_KEY', '--timeout', '2s')
    assert.equal(r.code, 1, r.stdout)
    assert.match(r.stderr, /the new data key stays staged as next/)
    const staged = /staged data key (\S+) \(next/.exec(r.stdout)?.[1] as string
    const status = json((await cli('--json', 'status')).stdout) as { secrets: { secret: string, keys: { kid: string, state: string }[] }[] }
    assert.deepEqual(status.secrets.find((s) => s.secret === 'data')?.keys.map((k) => [k.kid, k.state]), [[first, 'current'], [staged, 'next']])

    app.child.kill('SIGCONT')
    r = await cli('rotate', '--secret', 'ENCRYPTION_KEY')
    assert.equal(r.code, 0, r.stderr)
    assert.match(r.stdout, new RegExp(`resumed data key ${staged}`))
    await app.line(new RegExp(`^kid ${staged}$`))

    r = await cli('rollback', '--secret', 'ENCRYPTION_KEY')
    assert.equal(r.code, 0, r.stderr)
    assert.match(r.stdout, new RegExp(`data key ${first}: previous → current`))
    await app.line(new RegExp(`^kid ${first}$`))
    const checked = await app.stop()
    assert.equal(checked.lost + checked.failed, 0)
  })

  it('a cipher that starts while a rotation completes loads the promoted key (no change falls between its first read and its subscription)', async (t) => {
    const dir = tempDir(t)
    const env = { REKEY_STORE: path.join(dir, '.rekey', 'rekey.db') }
    const cli = (...args: string[]) => runBin(args, { cwd: dir, env })
    const first = /created data key (\S+)/.exec((await cli('rotate', '--secret', 'ENCRYPTION_KEY')).stdout)?.[1] as string
    assert.ok(first)

    // A whole rotation lands after the cipher read the key set and before it listens: the
    // cipher is not listed yet, so the rotation does not wait for it, and its notification is gone.
    let second = ''
    const subscribe = Object.getOwnPropertyDescriptor(SqlStore.prototype, 'subscribe')?.value as SqlStore['subscribe']
    t.after(() => { SqlStore.prototype.subscribe = subscribe })
    SqlStore.prototype.subscribe = async function (this: SqlStore, ...args: Parameters<SqlStore['subscribe']>) {
      SqlStore.prototype.subscribe = subscribe
      const r = await cli('--json', 'rotate', '--secret', 'ENCRYPTION_KEY')
      assert.equal(r.code, 0, r.stderr)
      second = (json(r.stdout) as { created: { kid: string } }).created.kid
      return subscribe.apply(this, args)
    }
    const late = await Cipher.fromStore(env.REKEY_STORE, { env: {}, name: 'late-starter' })
    t.after(() => late.close())
    assert.ok(second !== '' && second !== first, second)
    assert.equal(late.currentKid, second, 'the cipher encrypts with the key every other process encrypts with')
    const other = await Cipher.fromStore(env.REKEY_STORE, { env: {}, name: 'other' })
    try {
      assert.equal(late.decrypt(other.encrypt('a value', { aad: 'x' }), { aad: 'x' }).toString(), 'a value')
    } finally {
      await other.close()
    }
  })

  it('a reload that failed (store unreadable) is tried again by itself, so the staged key is acknowledged and promoted once the store is back', async (t) => {
    const dir = tempDir(t)
    const store = path.join(dir, '.rekey', 'rekey.db')
    const env = { REKEY_STORE: store }
    const cli = (...args: string[]) => runBin(args, { cwd: dir, env })
    assert.equal((await cli('rotate', '--secret', 'ENCRYPTION_KEY')).code, 0)
    const app = startApp(dir, env)
    t.after(() => { app.child.kill('SIGKILL') })
    await app.line(/^ready /)

    // Staged while the app is stopped: it has not loaded the new key, so the rotation stops at next.
    app.child.kill('SIGSTOP')
    let r = await cli('rotate', '--secret', 'ENCRYPTION_KEY', '--timeout', '1s')
    assert.equal(r.code, 1, r.stdout)
    const staged = /staged data key (\S+) \(next/.exec(r.stdout)?.[1] as string
    assert.ok(staged, r.stdout)
    // The app wakes up to the change while its store cannot be read: its reload fails.
    const db = new DatabaseSync(store)
    t.after(() => { if (db.isOpen) db.close() })
    db.exec('ALTER TABLE keys RENAME TO keys_offline')
    app.child.kill('SIGCONT')
    await app.stderrLine(/reloading the data keys failed .*the keys loaded are kept/)
    db.exec('ALTER TABLE keys_offline RENAME TO keys')
    db.close()

    // No further change is coming: the app must load the staged key by itself for the rotation to finish.
    r = await cli('rotate', '--secret', 'ENCRYPTION_KEY', '--timeout', '15s')
    assert.equal(r.code, 0, r.stderr)
    assert.match(r.stdout, new RegExp(`resumed data key ${staged}`))
    await app.line(new RegExp(`^kid ${staged}$`))
    const checked = await app.stop()
    assert.equal(checked.lost + checked.failed, 0)
  })

  it('refuses, with ERR_CONFIG and no file written, a missing store, a store without data keys, a missing master key; a row edited behind rekey is ERR_UNSAFE', async (t) => {
    const dir = tempDir(t)
    const store = path.join(dir, '.rekey', 'rekey.db')
    await assert.rejects(Cipher.fromStore(store, { env: {} }), { code: 'ERR_CONFIG', message: /no rekey store at .*rekey rotate --secret ENCRYPTION_KEY/ })
    // A relative location is named as the absolute path it was looked for at.
    await assert.rejects(Cipher.fromStore('./no-such-dir/rekey.db', { env: {} }), { code: 'ERR_CONFIG', message: new RegExp(`^no rekey store at ${path.resolve('no-such-dir/rekey.db').replaceAll('/', '\\/')}: `) })
    assert.equal(existsSync(path.dirname(store)), false, 'an app never creates a store')
    // A directory named as the store (REKEY_STORE=./.rekey): named as such, with or without a master key.
    mkdirSync(path.join(dir, 'a-dir'))
    for (const env of [{}, { REKEY_MASTER_KEY: randomBytes(32).toString('base64') }]) {
      await assert.rejects(Cipher.fromStore(path.join(dir, 'a-dir'), { env }), { code: 'ERR_CONFIG', message: /the rekey store .*a-dir is a directory: name the SQLite file/ })
    }

    // A store with no data key (created here, with its master key).
    const other = path.join(dir, 'other', 'rekey.db')
    const empty = await openStore(other)
    await empty.close()
    writeFileSync(path.join(dir, 'other', 'master.key'), `${randomBytes(32).toString('base64')}\n`, { mode: 0o600 })
    await assert.rejects(Cipher.fromStore(other, { env: {} }), { code: 'ERR_CONFIG', message: /holds no managed data key/ })

    const r = await runBin(['rotate', '--secret', 'ENCRYPTION_KEY'], { cwd: dir, env: { REKEY_STORE: store } })
    assert.equal(r.code, 0, r.stderr)
    // The first command on a new store names what it created and what to keep out of git, as in env-file mode.
    assert.match(r.stderr, /^rekey: created \.rekey\/ with rekey\.db \(the audit log and rotation inventory\) and master\.key \(its key\)\. They belong in \.gitignore, never in git: "\.rekey\/"$/m)
    renameSync(path.join(dir, '.rekey', 'master.key'), path.join(dir, 'master.key.moved'))
    await assert.rejects(Cipher.fromStore(store, { env: {} }), { code: 'ERR_CONFIG', message: /^REKEY_DATA_KEY_ACCESS is not set \(`rekey gen --data-key-access` prints it, where the store's master key is\), and no master key/ })
    assert.equal(existsSync(path.join(dir, '.rekey', 'master.key')), false, 'an app never invents a master key')
    renameSync(path.join(dir, 'master.key.moved'), path.join(dir, '.rekey', 'master.key'))
    const ok = await Cipher.fromStore(store, { env: {} })
    await ok.close()

    // The previous key set back to `next` behind rekey's back (someone with write access to the database).
    assert.equal((await runBin(['rotate', '--secret', 'ENCRYPTION_KEY'], { cwd: dir, env: { REKEY_STORE: store } })).code, 0)
    const db = new DatabaseSync(store)
    assert.equal(db.prepare("UPDATE keys SET state = 'next' WHERE purpose = 'data' AND state = 'previous'").run().changes, 1)
    db.close()
    await assert.rejects(Cipher.fromStore(store, { env: {} }), { code: 'ERR_UNSAFE', message: /stored as next but rekey left it previous/ })
    // The current one retired behind rekey's back: named as an edited row, not as a store without a data key,
    // and not sent to emergency (which never touches data keys).
    const edit = new DatabaseSync(store)
    edit.exec("UPDATE keys SET state = 'previous' WHERE purpose = 'data' AND state = 'next'")
    assert.equal(edit.prepare("UPDATE keys SET state = 'retired' WHERE purpose = 'data' AND state = 'current'").run().changes, 1)
    edit.close()
    const refused = await Cipher.fromStore(store, { env: {} }).then(() => null, (err: unknown) => err as Error & { code: string })
    assert.equal(refused?.code, 'ERR_UNSAFE', refused?.message)
    assert.match(refused.message, /data key \S+ is stored as retired but rekey left it current: .*Set its state back to current$/)
  })

  it('revoke of the current data key is refused as a data key (not sent to emergency, which never touches data keys)', async (t) => {
    const dir = tempDir(t)
    const env = { REKEY_STORE: path.join(dir, '.rekey', 'rekey.db') }
    const current = /created data key (\S+)/.exec((await runBin(['rotate', '--secret', 'ENCRYPTION_KEY'], { cwd: dir, env })).stdout)?.[1] as string
    const r = await runBin(['revoke', current], { cwd: dir, env })
    assert.equal(r.code, 1, r.stdout)
    assert.match(r.stderr, new RegExp(`ERR_UNSAFE: ${current} is a data key: it is not revoked .*rotate --secret ENCRYPTION_KEY`))
    assert.doesNotMatch(r.stderr, /emergency|--secret data/)
  })

  it('rotate --hard revokes the old key only once no instance encrypts with it and a recount finds no value of it (values written while it waited stay readable)', async (t) => {
    const dir = tempDir(t)
    const env = { REKEY_STORE: path.join(dir, '.rekey', 'rekey.db') }
    const cli = (...args: string[]) => runBin(args, { cwd: dir, env })
    const first = /created data key (\S+)/.exec((await cli('rotate', '--secret', 'ENCRYPTION_KEY')).stdout)?.[1] as string
    // A new, empty encrypted column, counted: no value of the (leaked) key yet, so --hard is allowed.
    const appDb = path.join(dir, 'app.db')
    const db = new DatabaseSync(appDb)
    db.exec('CREATE TABLE items (id INTEGER PRIMARY KEY, body TEXT)')
    db.close()
    let r = await cli('rewrap', '--url', appDb, '--table', 'items', '--column', 'body', '--aad-columns', 'id', '--count')
    assert.equal(r.code, 0, r.stderr)

    // The rotation waits for a stalled instance; meanwhile an application starts and writes under the current key.
    const stalled = startApp(mkdtempSync(path.join(dir, 'stalled-')), env, 'stalled')
    t.after(() => { stalled.child.kill('SIGKILL') })
    await stalled.line(/^ready /)
    stalled.child.kill('SIGSTOP')
    const hard = cli('--json', 'rotate', '--secret', 'ENCRYPTION_KEY', '--hard', '--timeout', '20s')
    const status = async () => json((await cli('--json', 'status')).stdout) as { secrets: { secret: string, keys: { kid: string, state: string }[] }[] }
    for (let i = 0; i < 200 && !(await status()).secrets.find((s) => s.secret === 'data')?.keys.some((k) => k.state === 'next'); i++) await new Promise((resolve) => setTimeout(resolve, 50))
    const app = startApp(dir, env)
    t.after(() => { app.child.kill('SIGKILL') })
    assert.equal((await app.line(/^ready (\S+)$/))[1], first, 'the staged key does not encrypt yet')
    stalled.child.kill('SIGCONT')
    r = await hard
    const second = ((await status()).secrets.find((s) => s.secret === 'data')?.keys.find((k) => k.state === 'current'))?.kid as string
    await app.line(new RegExp(`^kid ${second}$`))
    const checked = await app.stop()
    assert.equal(checked.failed, 0, `values written under ${first} while the rotation waited must stay readable (${JSON.stringify(checked)})`)
    assert.equal(checked.lost, 0)
    // The old key was kept (previous), and the command said why.
    assert.equal(r.code, 1, r.stdout)
    assert.match(r.stderr, new RegExp(`ERR_UNSAFE.*rotate --hard of ENCRYPTION_KEY: the new data key encrypts, but data key ${first} is kept as previous.*items\\.body .* holds \\d+ value\\(s\\) of data key ${first}`))
    assert.deepEqual((await status()).secrets.find((s) => s.secret === 'data')?.keys.map((k) => [k.kid, k.state]), [[first, 'previous'], [second, 'current']])
    await stalled.stop()

    // No value left under any key (the rows deleted): --hard now revokes the old keys once the new key encrypts everywhere.
    const wipe = new DatabaseSync(appDb)
    wipe.exec('DELETE FROM items')
    wipe.close()
    r = await cli('--json', 'rotate', '--secret', 'ENCRYPTION_KEY', '--hard')
    assert.equal(r.code, 0, r.stderr)
    const third = (json(r.stdout) as { created: { kid: string } }).created.kid
    assert.deepEqual((json(r.stdout) as { changes: { kid: string, to: string }[] }).changes.filter((c) => c.to === 'revoked').map((c) => c.kid).sort(), [first, second].sort())
    assert.deepEqual((await status()).secrets.find((s) => s.secret === 'data')?.keys.map((k) => [k.kid, k.state]), [[first, 'revoked'], [second, 'revoked'], [third, 'current']])
  })

  it('rekey scan reports a leaked data key as live, with the data key\'s remedy (rotate, rewrap, finalize), not emergency', async (t) => {
    const dir = tempDir(t)
    const store = path.join(dir, '.rekey', 'rekey.db')
    const env = { REKEY_STORE: store }
    const kid = /created data key (\S+)/.exec((await runBin(['rotate', '--secret', 'ENCRYPTION_KEY'], { cwd: dir, env })).stdout)?.[1] as string
    const opened = await openStore(store)
    const keyset = await opened.getKeyset()
    await opened.close()
    const masterKey = Buffer.from(readFileSync(path.join(dir, '.rekey', 'master.key'), 'utf8').trim(), 'base64')
    const raw = (dataKeysOf(keyset, accessKeysOf([masterKey])).find((k) => k.kid === kid)?.key as KeyObject).export()
    const repo = path.join(dir, 'repo')
    mkdirSync(repo)
    writeFileSync(path.join(repo, 'config.js'), `export const key = '${raw.toString('hex')}'\n`)
    const r = await runBin(['scan', repo], { cwd: dir, env })
    assert.equal(r.code, 1, r.stderr)
    assert.match(r.stdout, new RegExp(`LIVE .*config\\.js:1 +rekey/live-secret +kid ${kid}`))
    assert.match(r.stdout, /a live rekey data key \(store data key, kid \S+\) is in this file: it still decrypts .*run `rekey rotate --secret ENCRYPTION_KEY` now/)
    assert.match(r.stdout, /1 live rekey data key\(s\) found/)
    assert.doesNotMatch(r.stdout, /run `rekey emergency`|signs or verifies tokens/)
    assert.match(r.stderr, /live secrets among them: a data key: run rekey rotate --secret ENCRYPTION_KEY/)
    assert.doesNotMatch(r.stdout + r.stderr, new RegExp(raw.toString('hex')))
  })

  it('REKEY_DATA_KEY_ACCESS opens the data keys without the master key, and is not a master key', async (t) => {
    const dir = tempDir(t)
    const store = path.join(dir, '.rekey', 'rekey.db')
    const env = { REKEY_STORE: store }
    assert.equal((await runBin(['rotate', '--secret', 'ENCRYPTION_KEY'], { cwd: dir, env })).code, 0)
    writeFileSync(path.join(dir, 'app.env'), 'PORT=3000\n', { mode: 0o600 })
    const written = await runBin(['--env', 'app.env', '--store', store, 'gen', '--data-key-access', '--var', 'REKEY_DATA_KEY_ACCESS'], { cwd: dir, env })
    assert.equal(written.code, 0, written.stderr)
    assert.equal(written.stdout, 'wrote the data-key access key to REKEY_DATA_KEY_ACCESS in app.env\n')
    const access = parseEnv(readFileSync(path.join(dir, 'app.env'), 'utf8')).REKEY_DATA_KEY_ACCESS as string
    assert.equal((await runBin(['gen', '--data-key-access'], { cwd: dir, env })).stdout.trim(), access, 'derived, so the same every time')

    // The master key moved away: the access key alone opens the data keys.
    renameSync(path.join(dir, '.rekey', 'master.key'), path.join(dir, 'master.key.moved'))
    const cipher = await Cipher.fromStore(store, { env: { REKEY_DATA_KEY_ACCESS: access } })
    const value = cipher.encrypt('x', { aad: '1' })
    assert.equal(cipher.decrypt(value, { aad: '1' }).toString(), 'x')
    await cipher.close()
    // It is not the master key: the store's audit chain does not verify under it.
    const asMaster = await runBin(['audit', '--verify'], { cwd: dir, env: { ...env, REKEY_MASTER_KEY: access } })
    assert.notEqual(asMaster.code, 0)
    // A wrong access key opens nothing.
    // The refusal names the key the application gave, not the master key it never held.
    await assert.rejects(Cipher.fromStore(store, { env: { REKEY_DATA_KEY_ACCESS: randomBytes(32).toString('base64') } }), { code: 'ERR_CONFIG', message: /do not open with REKEY_DATA_KEY_ACCESS: set it to what rekey gen --data-key-access prints/ })
    await assert.rejects(Cipher.fromStore(store, { env: { REKEY_DATA_KEY_ACCESS: 'short' } }), { code: 'ERR_CONFIG', message: /REKEY_DATA_KEY_ACCESS must be the 32-byte key `rekey gen --data-key-access` prints/ })
  })

  it('after rotate --secret master-key the data keys open with the new access key (and the old one as _PREV during the rollout)', async (t) => {
    const dir = tempDir(t)
    const store = path.join(dir, 'rekey.db')
    const oldMaster = randomBytes(32).toString('base64')
    const newMaster = randomBytes(32).toString('base64')
    const cli = (env: Record<string, string>, ...args: string[]) => runBin(args, { cwd: dir, env: { REKEY_STORE: store, ...env } })
    assert.equal((await cli({ REKEY_MASTER_KEY: oldMaster }, 'rotate', '--secret', 'ENCRYPTION_KEY')).code, 0)
    const oldAccess = (await cli({ REKEY_MASTER_KEY: oldMaster }, 'gen', '--data-key-access')).stdout.trim()
    const newAccess = (await cli({ REKEY_MASTER_KEY: newMaster }, 'gen', '--data-key-access')).stdout.trim()
    assert.notEqual(oldAccess, newAccess)
    const before = await Cipher.fromStore(store, { env: { REKEY_DATA_KEY_ACCESS: oldAccess } })
    const value = before.encrypt('kept', { aad: 'row' })
    await before.close()

    const r = await cli({ REKEY_MASTER_KEY: newMaster, REKEY_MASTER_KEY_PREV: oldMaster }, 'rotate', '--secret', 'master-key')
    assert.equal(r.code, 0, r.stderr)
    await assert.rejects(Cipher.fromStore(store, { env: { REKEY_DATA_KEY_ACCESS: oldAccess } }), { code: 'ERR_CONFIG' })
    for (const env of [{ REKEY_DATA_KEY_ACCESS: newAccess }, { REKEY_DATA_KEY_ACCESS: newAccess, REKEY_DATA_KEY_ACCESS_PREV: oldAccess }, { REKEY_MASTER_KEY: newMaster }]) {
      const after = await Cipher.fromStore(store, { env })
      assert.equal(after.decrypt(value, { aad: 'row' }).toString(), 'kept')
      await after.close()
    }
  })

  it('rewrap in managed mode refuses an ENCRYPTION_KEY in the environment as well (which key encrypts is never a guess)', async (t) => {
    const dir = tempDir(t)
    const env = { REKEY_STORE: path.join(dir, '.rekey', 'rekey.db') }
    assert.equal((await runBin(['rotate', '--secret', 'ENCRYPTION_KEY'], { cwd: dir, env })).code, 0)
    const app = new DatabaseSync(path.join(dir, 'app.db'))
    app.exec('CREATE TABLE items (id INTEGER PRIMARY KEY, body TEXT)')
    app.close()
    const r = await runBin(['rewrap', '--url', path.join(dir, 'app.db'), '--table', 'items', '--column', 'body', '--count'], { cwd: dir, env: { ...env, ENCRYPTION_KEY: randomBytes(32).toString('hex') } })
    assert.equal(r.code, 2, r.stdout)
    assert.match(r.stderr, /ERR_CONFIG: ENCRYPTION_KEY is set in the environment and .* holds managed data keys/)
  })
})
