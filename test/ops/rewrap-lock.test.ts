/**
 * One rewrap per column: two real `rekey rewrap` processes on the same SQLite table. While
 * the first one lives (held on the application's write lock, then stopped with SIGSTOP, so
 * it cannot finish first), the second is refused with ERR_CONFLICT and exit 1 and changes nothing; the first then finishes. A run
 * killed with kill -9 leaves its lease behind, and the next run takes it over at once (its
 * holder's process is gone) and resumes where the killed one stopped.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { existsSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import { describe, it } from 'node:test'
import { Cipher } from '../../src/crypt.ts'
import { tempDir } from '../cli/helpers.ts'
import { killAt, rewrapProcess } from './support/rewrap-process.ts'

const ROWS = 4000

/** An env file rotated once (ENCRYPTION_KEY_PREV set) and a SQLite table of old-key values. */
function setUp(dir: string): { args: string[], file: string, newKid: string } {
  const oldKey = randomBytes(32).toString('hex')
  const newKey = randomBytes(32).toString('hex')
  const envFile = path.join(dir, '.env')
  writeFileSync(envFile, `ENCRYPTION_KEY=${newKey}\nENCRYPTION_KEY_PREV=${oldKey}\nREKEY_MASTER_KEY=${randomBytes(32).toString('base64')}\n`, { mode: 0o600 })
  const old = Cipher.fromEnv({ ENCRYPTION_KEY: oldKey })
  const file = path.join(dir, 'app.db')
  const db = new DatabaseSync(file)
  db.exec('PRAGMA journal_mode = WAL; CREATE TABLE secrets (id INTEGER PRIMARY KEY, payload TEXT)')
  const insert = db.prepare('INSERT INTO secrets VALUES (?, ?)')
  db.exec('BEGIN')
  for (let id = 1; id <= ROWS; id++) insert.run(id, old.encrypt(`value ${id}`, { aad: String(id) }))
  db.exec('COMMIT')
  db.close()
  const args = ['--env-file', envFile, 'rewrap', '--url', file, '--table', 'secrets', '--column', 'payload', '--aad-columns', 'id', '--batch-size', '100']
  return { args, file, newKid: Cipher.fromEnv({ ENCRYPTION_KEY: newKey }).currentKid }
}

/** Values per kid in the table, by the application's own reading. */
function kidsIn(file: string): Map<string, number> {
  const db = new DatabaseSync(file)
  try {
    const counts = new Map<string, number>()
    for (const { payload } of db.prepare('SELECT payload FROM secrets').all() as { payload: string }[]) {
      const kid = Cipher.kidOf(payload)
      counts.set(kid, (counts.get(kid) ?? 0) + 1)
    }
    return counts
  } finally {
    db.close()
  }
}

/** Waits until a rewrap lease is held in the store file; the holder's pid. */
async function leaseHolderPid(store: string): Promise<number> {
  for (let attempt = 0; attempt < 600; attempt++) {
    if (existsSync(store)) {
      const db = new DatabaseSync(store, { readOnly: true })
      try {
        db.exec('PRAGMA busy_timeout = 1000')
        const row = db.prepare("SELECT holder FROM leases WHERE name LIKE 'rewrap.%'").get() as { holder: string } | undefined
        if (row !== undefined) return Number(row.holder.split(':')[1])
      } catch {
        // The store is still being created.
      } finally {
        db.close()
      }
    }
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  throw new Error('the first rewrap never took its lock')
}

describe('rewrap lock: one run per column', () => {
  it('refuses a second rewrap of the same column while the first lives (ERR_CONFLICT, exit 1)', async (t) => {
    const dir = tempDir(t)
    const { args, file, newKid } = setUp(dir)
    // The application holds its database's write lock: the first run takes the rewrap lock,
    // then waits on its first batch (SQLite's busy wait), with no transaction open in the store.
    const app = new DatabaseSync(file)
    app.exec('PRAGMA busy_timeout = 10000; BEGIN IMMEDIATE')
    const first = rewrapProcess(dir, args)
    const pid = await leaseHolderPid(path.join(dir, '.rekey', 'rekey.db'))
    // Stopped, not dead: the holder lives but cannot finish before the second run is refused.
    process.kill(pid, 'SIGSTOP')
    app.exec('ROLLBACK')
    app.close()
    const second = await rewrapProcess(dir, args)
    process.kill(pid, 'SIGCONT')
    assert.equal(second.code, 1, second.stderr)
    assert.match(second.stderr, new RegExp(`^rekey: ERR_CONFLICT: another rewrap of secrets\\.payload is running \\(process ${pid} on `))
    assert.equal(second.stderr.trim().split('\n').length, 1, 'one line, no stack trace')
    assert.deepEqual(second.lines, [], 'the refused run wrote no progress')

    const firstRun = await first
    assert.equal(firstRun.code, 0, firstRun.stderr)
    const done = firstRun.lines.find((l) => l.event === 'done') as Record<string, unknown>
    assert.equal(done.rewrapped, ROWS)
    assert.equal(done.resumedFrom, null)
    assert.deepEqual([...kidsIn(file)], [[newKid, ROWS]])

    // The lock was given up: the next run is not refused (nothing left to do).
    const third = await rewrapProcess(dir, args)
    assert.equal(third.code, 0, third.stderr)
    assert.equal((third.lines.find((l) => l.event === 'done') as Record<string, unknown>).rewrapped, 0)
  })

  it('takes over the lock of a run killed with kill -9 and resumes it', async (t) => {
    const dir = tempDir(t)
    const { args, file, newKid } = setUp(dir)
    const killed = await rewrapProcess(dir, args, killAt(ROWS / 4))
    assert.equal(killed.signal, 'SIGKILL', killed.stderr)

    const resumed = await rewrapProcess(dir, args)
    assert.equal(resumed.code, 0, resumed.stderr)
    const done = resumed.lines.find((l) => l.event === 'done') as Record<string, unknown>
    assert.ok(Number(done.resumedFrom) >= ROWS / 4, `resumed from ${String(done.resumedFrom)}`)
    assert.equal(done.rows, ROWS)
    assert.deepEqual([...kidsIn(file)], [[newKid, ROWS]])
  })
})
