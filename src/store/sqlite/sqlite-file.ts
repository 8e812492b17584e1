/**
 * The database file's place on disk: a 0700 directory created on first use, and the database
 * with its `-wal` and `-shm` companions readable by the owner only (0600). The store holds
 * password hashes, sealed keys and the audit log.
 */
import { chmodSync, closeSync, existsSync, mkdirSync, openSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import { DatabaseSync } from 'node:sqlite'

/** True for SQLite's in-memory database names, which have no file. */
export function isMemoryPath(path: string): boolean {
  return path === ':memory:' || path.startsWith('file::memory:')
}

/** Creates the directory (0700) and an empty database file (0600) if missing; tightens an existing file to 0600. */
export function prepareDatabaseFile(path: string): string {
  if (isMemoryPath(path)) return path
  const file = resolve(path)
  const dir = dirname(file)
  if (!existsSync(dir)) mkdirSync(dir, { recursive: true, mode: 0o700 })
  // 'a' creates with 0600 if missing and never truncates a file another process just created.
  closeSync(openSync(file, 'a', 0o600))
  chmodOwnerOnly(file)
  return file
}

/** Tightens the WAL and shared-memory files, which exist once the database was written. */
export function tightenCompanionFiles(file: string): void {
  if (isMemoryPath(file)) return
  for (const suffix of ['-wal', '-shm']) chmodOwnerOnly(file + suffix)
}

function chmodOwnerOnly(file: string): void {
  try {
    chmodSync(file, 0o600)
  } catch (err) {
    // Missing (not created yet) or owned by another user (who chose its mode): leave it.
    const code = (err as NodeJS.ErrnoException).code
    if (code !== 'ENOENT' && code !== 'EPERM') throw err
  }
}

/**
 * True when the SQLite file at `path` exists and holds a key, an audit row or a user (what a
 * master key must already exist for). Read-only: nothing is created or migrated. A file that
 * is not a readable rekey database counts as holding data, so nothing is generated for it.
 */
export function sqliteHoldsData(path: string): boolean {
  if (isMemoryPath(path) || !existsSync(path)) return false
  let db: DatabaseSync | undefined
  try {
    db = new DatabaseSync(path, { readOnly: true })
    const tables = new Set((db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all() as Array<{ name: string }>).map((r) => r.name))
    for (const table of ['keys', 'audit_events', 'users']) {
      if (tables.has(table) && db.prepare(`SELECT 1 FROM ${table} LIMIT 1`).get() !== undefined) return true
    }
    return false
  } catch {
    return true
  } finally {
    db?.close()
  }
}
