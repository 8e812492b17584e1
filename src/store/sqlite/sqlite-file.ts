/**
 * The database file's place on disk: a 0700 directory created on first use, and the database
 * with its `-wal` and `-shm` companions readable by the owner only (0600). The store holds
 * password hashes, sealed keys and the audit log.
 */
import { chmodSync, closeSync, existsSync, mkdirSync, openSync } from 'node:fs'
import { dirname, resolve } from 'node:path'

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
