/**
 * SQLite errors as the caller sees them. `node:sqlite` throws errors with `errcode`, the
 * extended result code; the primary code is its low byte.
 */
import { isRekeyError } from '../../core/errors.ts'
import { uniqueConflict, unavailable } from '../errors.ts'

const SQLITE_CONSTRAINT_PRIMARYKEY = 1555
const SQLITE_CONSTRAINT_UNIQUE = 2067

/** Primary result codes that mean "the database cannot serve now": busy past the timeout, I/O, disk, file. */
const UNAVAILABLE = new Map<number, string>([
  [5, 'the database stayed locked past the busy timeout'], // SQLITE_BUSY
  [6, 'a table stayed locked'], // SQLITE_LOCKED
  [8, 'the database is read-only'], // SQLITE_READONLY
  [10, 'a disk I/O error occurred'], // SQLITE_IOERR
  [11, 'the database file is corrupt'], // SQLITE_CORRUPT
  [13, 'the disk is full'], // SQLITE_FULL
  [14, 'the database file cannot be opened'], // SQLITE_CANTOPEN
  [26, 'the file is not a database'], // SQLITE_NOTADB
])

/** Maps a driver error; anything unrecognized (a bug) is returned unchanged. */
export function mapSqliteError(err: unknown, location: string): unknown {
  if (isRekeyError(err) || !(err instanceof Error)) return err
  const errcode = (err as { errcode?: unknown }).errcode
  if (typeof errcode !== 'number') {
    // node:sqlite refuses calls on a closed database with ERR_INVALID_STATE.
    if ((err as { code?: unknown }).code === 'ERR_INVALID_STATE') return unavailable(`the SQLite store ${location} is closed`, err)
    return err
  }
  if (errcode === SQLITE_CONSTRAINT_UNIQUE || errcode === SQLITE_CONSTRAINT_PRIMARYKEY) {
    // "UNIQUE constraint failed: users.email" names columns, never values.
    const match = /constraint failed: (.+)$/.exec(err.message)
    const columns = (match?.[1] ?? '').split(',').map((c) => c.trim())
    const table = columns[0]?.split('.')[0] ?? 'unknown'
    return uniqueConflict(table, columns.map((c) => c.split('.')[1] ?? c))
  }
  const reason = UNAVAILABLE.get(errcode & 0xff)
  return reason === undefined ? err : unavailable(`the SQLite store ${location} is unavailable: ${reason}`, err)
}
