/**
 * A master key is never invented for data that exists (issue 11, item 1), through the real
 * CLI: a store that holds keys, audit rows or users and has no master key (no
 * REKEY_MASTER_KEY, no master.key beside it) is refused with exit 2 and ERR_CONFIG naming what
 * to set and where it looked; no key file and no row are written.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { describe, test } from 'node:test'
import { openStore } from '../../src/store/open.ts'
import { runBin, runCli, serveOnce, tempDir } from './helpers.ts'

async function auditRows(location: string): Promise<number> {
  const store = await openStore(location)
  try {
    return (await store.listAudit()).length
  } finally {
    await store.close()
  }
}

describe('a master key is never invented for data that exists', () => {
  test('record, managed commands, rotate-db, audit --verify and serve refuse a store whose master.key was moved away', async (t) => {
    const dir = tempDir(t)
    const db = path.join(dir, 'state', 'rekey.db')
    const keyFile = path.join(dir, 'state', 'master.key')
    const first = await runCli(['--store', db, 'record', 'SMTP_PASSWORD'], {})
    assert.equal(first.code, 0, first.stderr)
    assert.match(first.stderr, /generated .*master\.key/, 'a new store gets a key, with a warning')
    renameSync(keyFile, path.join(dir, 'master.key.moved'))
    const rows = await auditRows(db)

    const record = await runBin(['--store', db, 'record', 'SMTP_PASSWORD'], { cwd: dir, env: { REKEY_MASTER_KEY: '' } })
    assert.equal(record.code, 2, record.stderr)
    assert.match(record.stderr, /^rekey: ERR_CONFIG: no master key for /)
    assert.match(record.stderr, /set REKEY_MASTER_KEY/)
    assert.ok(record.stderr.includes(keyFile), 'names where it looked')
    assert.doesNotMatch(record.stderr, /\n\s+at /, 'no stack trace')

    for (const argv of [['status'], ['rotate'], ['audit', '--verify'], ['finalize', '--secret', 'DATABASE_URL'], ['--json', 'record', 'X_TOKEN']]) {
      const r = await runCli(['--store', db, ...argv], {})
      assert.equal(r.code, 2, `${argv.join(' ')}: ${r.stderr}`)
      assert.match(r.stderr, /ERR_CONFIG/, argv.join(' '))
    }

    const served = await serveOnce(['--store', db, 'serve', '--port', '0'], { cwd: dir })
    assert.equal(served.listening, null, 'serve did not start')
    assert.equal(served.code, 2, served.stderr)
    assert.match(served.stderr, /ERR_CONFIG: no master key for /)

    assert.equal(existsSync(keyFile), false, 'no master.key was written')
    assert.equal(await auditRows(db), rows, 'no audit row was written')
  })

  test('env-file mode: a rotation refuses, and the file stays as it was, when the store beside it lost its key', async (t) => {
    const dir = tempDir(t)
    const file = path.join(dir, 'app.env')
    writeFileSync(file, `JWT_SECRET=${randomBytes(32).toString('base64url')}\n`, { mode: 0o600 })
    const rotated = await runCli(['--env-file', file, 'rotate'], {})
    assert.equal(rotated.code, 0, rotated.stderr)
    const beside = path.join(dir, '.rekey', 'rekey.db')
    assert.ok(existsSync(beside), 'the audit row went beside the file')
    renameSync(path.join(dir, '.rekey', 'master.key'), path.join(dir, 'moved.key'))
    const before = readFileSync(file, 'utf8')
    const rows = await auditRows(beside)

    const again = await runCli(['--env-file', file, 'rotate', '--hard'], {})
    assert.equal(again.code, 2, again.stderr)
    assert.match(again.stderr, /ERR_CONFIG: no master key for .*set REKEY_MASTER_KEY/)
    assert.ok(again.stderr.includes(file), 'names the env file it also looked in')
    assert.equal(readFileSync(file, 'utf8'), before, 'the env file is unchanged')
    assert.equal(existsSync(path.join(dir, '.rekey', 'master.key')), false)
    assert.equal(await auditRows(beside), rows)
  })

  test('a SQLite file that is not a rekey store with data is not given a key either', async (t) => {
    const dir = tempDir(t)
    const db = path.join(dir, 'copied.db')
    writeFileSync(db, 'not a database')
    const r = await runCli(['--store', db, 'record', 'SMTP_PASSWORD'], {})
    assert.equal(r.code, 2, r.stderr)
    assert.equal(existsSync(path.join(dir, 'master.key')), false)
  })
})

