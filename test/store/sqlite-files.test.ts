/** SQLite specifics: file modes, reopening, migrations, lock timeouts, broken files. */
import assert from 'node:assert/strict'
import { SQLITE_MIGRATIONS } from '../../src/store/sqlite/migrations.ts'
import { chmodSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import { after, before, describe, it } from 'node:test'
import { openStore } from '../../src/store/open.ts'
import { T0, newUser } from './support/fixtures.ts'
import { runInThreads } from './support/threads.ts'

function mode(path: string): number {
  return statSync(path).mode & 0o777
}

describe('sqlite store files', () => {
  let dir: string
  before(() => { dir = mkdtempSync(join(tmpdir(), 'rekey-sqlite-')) })
  after(() => rmSync(dir, { recursive: true, force: true }))

  it('creates the directory 0700 and the database, WAL and shared-memory files 0600', async () => {
    const file = join(dir, 'fresh', '.rekey', 'rekey.db')
    const store = await openStore(file)
    try {
      await newUser(store)
      assert.equal(mode(join(dir, 'fresh', '.rekey')), 0o700)
      assert.equal(mode(file), 0o600)
      assert.equal(mode(`${file}-wal`), 0o600)
      assert.equal(mode(`${file}-shm`), 0o600)
      const raw = new DatabaseSync(file, { readOnly: true })
      assert.equal(raw.prepare('PRAGMA journal_mode').get()?.journal_mode, 'wal')
      raw.close()
    } finally {
      await store.close()
    }
  })

  it('tightens an existing world-readable database to 0600', async () => {
    const file = join(dir, 'loose.db')
    writeFileSync(file, '')
    chmodSync(file, 0o644)
    const store = await openStore(file)
    await store.close()
    assert.equal(mode(file), 0o600)
  })

  it('keeps data across reopening and applies each migration once', async () => {
    const file = join(dir, 'reopen.db')
    const first = await openStore(file)
    const id = await newUser(first, 'keep@example.test')
    await first.close()
    await first.close() // idempotent
    const second = await openStore(file)
    try {
      assert.equal((await second.getUserByEmail('keep@example.test'))?.id, id)
    } finally {
      await second.close()
    }
    const raw = new DatabaseSync(file)
    assert.deepEqual(raw.prepare('SELECT version FROM schema_migrations').all().map((r) => r.version), SQLITE_MIGRATIONS.map((m) => m.version))
    raw.close()
  })

  it('opens safely when several threads create the same file at once', async () => {
    const file = join(dir, 'together.db')
    await runInThreads(Array.from({ length: 4 }, (_, id) => ({ path: file, id, op: 'audit' as const, count: 1 })))
    const store = await openStore(file)
    try {
      assert.equal((await store.listAudit()).length, 4)
    } finally {
      await store.close()
    }
  })

  it('refuses a database migrated by a newer rekey with ERR_CONFIG', async () => {
    const file = join(dir, 'newer.db')
    await (await openStore(file)).close()
    const raw = new DatabaseSync(file)
    raw.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)').run(999, 'from the future', T0)
    raw.close()
    await assert.rejects(openStore(file), { code: 'ERR_CONFIG' })
  })

  it('answers ERR_STORE_UNAVAILABLE when another process holds the write lock past the busy timeout', async () => {
    const file = join(dir, 'busy.db')
    const store = await openStore(file, { busyTimeoutMs: 100 })
    const holder = new DatabaseSync(file)
    try {
      holder.exec('BEGIN IMMEDIATE')
      const started = Date.now()
      await assert.rejects(store.setSetting('blocked', 'yes'), (err: Error & { code?: string }) => {
        assert.equal(err.code, 'ERR_STORE_UNAVAILABLE')
        assert.match(err.message, /busy timeout/)
        return true
      })
      assert.ok(Date.now() - started < 2000, 'fails after the busy timeout, not later')
      assert.equal(await store.getSetting('blocked'), null, 'readers are not blocked in WAL mode')
      holder.exec('ROLLBACK')
      await store.setSetting('blocked', 'no')
      assert.equal(await store.getSetting('blocked'), 'no')
    } finally {
      holder.close()
      await store.close()
    }
  })

  it('answers ERR_STORE_UNAVAILABLE for a file that is not a database', async () => {
    const file = join(dir, 'garbage.db')
    writeFileSync(file, 'this is not a sqlite database, just some text that is long enough'.repeat(20))
    await assert.rejects(openStore(file), { code: 'ERR_STORE_UNAVAILABLE' })
  })

  it('answers ERR_STORE_UNAVAILABLE after close', async () => {
    const store = await openStore(join(dir, 'closed.db'))
    await store.close()
    await assert.rejects(store.getSetting('x'), { code: 'ERR_STORE_UNAVAILABLE' })
    await assert.rejects(store.ping(), { code: 'ERR_STORE_UNAVAILABLE' })
  })
})
