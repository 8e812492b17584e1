/**
 * SQLite: a consistent snapshot through SQLite's online backup API (`node:sqlite` `backup()`),
 * taken on a connection of its own while the store keeps serving; the checks a restore drill
 * runs; and the atomic replacement of a store file.
 */
import { randomBytes } from 'node:crypto'
import { constants, existsSync, promises as fs } from 'node:fs'
import path from 'node:path'
import * as sqlite from 'node:sqlite'
import { DatabaseSync } from 'node:sqlite'
import { RekeyError } from '../../core/errors.ts'
import { BackupError } from './backup-error.ts'
import { onInterrupt } from './interrupt-cleanup.ts'
import { foreignSqliteObjects } from './own-schema.ts'
import { syncDirectory } from '../../config/env-file.ts'

/** Tables whose rows make a store "not empty" for restore (the seeded single rows do not count). */
export const DATA_TABLES = Object.freeze(['users', 'session_families', 'refresh_tokens', 'keys', 'audit_events', 'secrets', 'settings'])

// All pages in one step: a read in WAL mode never blocks writers, and a backup in several
// steps restarts whenever another connection writes, which a busy store does all the time.
const ALL_PAGES = 1_000_000_000

/** What a snapshot holds: schema version and rows per table. */
export interface SnapshotFacts {
  readonly schemaVersion: number
  readonly rowCounts: Record<string, number>
}

function facts(db: DatabaseSync): SnapshotFacts {
  const tables = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name").all().map((r) => String(r.name))
  const rowCounts: Record<string, number> = {}
  for (const t of tables) rowCounts[t] = Number(db.prepare(`SELECT count(*) AS n FROM "${t.replace(/"/g, '""')}"`).get()?.n ?? 0)
  const version = tables.includes('schema_migrations') ? Number(db.prepare('SELECT max(version) AS v FROM schema_migrations').get()?.v ?? 0) : 0
  return { schemaVersion: version, rowCounts }
}

function integrityProblems(db: DatabaseSync): string[] {
  const rows = db.prepare('PRAGMA integrity_check').all().map((r) => String(Object.values(r)[0]))
  const problems = rows.length === 1 && rows[0] === 'ok' ? [] : rows.slice(0, 5)
  const fk = db.prepare('PRAGMA foreign_key_check').all()
  if (fk.length > 0) problems.push(`${fk.length} foreign key violation(s)`)
  return problems
}

/**
 * Copies the live database at `storePath` into `outFile` (a single file, journal mode DELETE)
 * and reads its facts from the copy itself, so counts and copy always agree.
 */
export async function snapshotSqlite(storePath: string, outFile: string): Promise<SnapshotFacts> {
  if (typeof sqlite.backup !== 'function') throw new RekeyError('ERR_CONFIG', 'this Node.js has no node:sqlite backup(); use Node.js 22.16 or later')
  if (!existsSync(storePath)) throw new RekeyError('ERR_CONFIG', `no store at ${storePath}`)
  const source = new DatabaseSync(storePath, { readOnly: true })
  try {
    source.exec('PRAGMA busy_timeout = 5000')
    await sqlite.backup(source, outFile, { rate: ALL_PAGES })
  } finally {
    source.close()
  }
  await fs.chmod(outFile, 0o600)
  const copy = new DatabaseSync(outFile)
  try {
    copy.exec('PRAGMA journal_mode = DELETE')
    const problems = integrityProblems(copy)
    if (problems.length > 0) throw new BackupError(`the store failed its integrity check: ${problems.join('; ')}`)
    return facts(copy)
  } finally {
    copy.close()
  }
}

/** The restore drill on an extracted copy: integrity, foreign keys, facts. Problems, or none. */
export function checkSqliteCopy(file: string, expected: SnapshotFacts): string[] {
  const db = new DatabaseSync(file)
  try {
    const problems = integrityProblems(db).map((p) => `integrity: ${p}`)
    const found = facts(db)
    if (found.schemaVersion !== expected.schemaVersion) problems.push(`schema version ${found.schemaVersion}, the manifest says ${expected.schemaVersion}`)
    problems.push(...compareCounts(found.rowCounts, expected.rowCounts))
    return problems
  } finally {
    db.close()
  }
}

/** BackupError naming what in the SQLite file is not rekey's own schema (a trigger, a view, an extra table...). */
export function checkOwnSqlite(file: string): void {
  const db = new DatabaseSync(file, { readOnly: true })
  let foreign: string[]
  try {
    foreign = foreignSqliteObjects(db, facts(db).schemaVersion)
  } finally {
    db.close()
  }
  if (foreign.length > 0) {
    throw new BackupError(`the store holds objects that are not rekey's own, so it is refused before anything is restored: ${foreign.slice(0, 10).join(', ')}${foreign.length > 10 ? ` and ${foreign.length - 10} more` : ''}`)
  }
}

/** Instances of the SQLite store whose last heartbeat is at or after `since` (ms); none for a missing file. */
export function sqliteLiveInstances(storePath: string, since: number): Array<{ instanceId: string, hostname: string, pid: number, lastSeen: number }> {
  if (!existsSync(storePath)) return []
  const db = new DatabaseSync(storePath, { readOnly: true })
  try {
    db.exec('PRAGMA busy_timeout = 5000')
    const tables = new Set(db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all().map((r) => String(r.name)))
    if (!tables.has('instances')) return []
    return db.prepare('SELECT instance_id, hostname, pid, last_seen FROM instances WHERE last_seen >= ? ORDER BY instance_id').all(since)
      .map((r) => ({ instanceId: String(r.instance_id), hostname: String(r.hostname), pid: Number(r.pid), lastSeen: Number(r.last_seen) }))
  } finally {
    db.close()
  }
}

/** Differences between counted rows and the manifest's. */
export function compareCounts(found: Readonly<Record<string, number>>, expected: Readonly<Record<string, number>>): string[] {
  const problems: string[] = []
  for (const table of new Set([...Object.keys(found), ...Object.keys(expected)])) {
    if (found[table] !== expected[table]) problems.push(`${table}: ${found[table] ?? 'missing'} rows, the manifest says ${expected[table] ?? 'nothing'}`)
  }
  return problems
}

/** Rows in the data tables of an existing store file; 0 for a missing or new one. */
export function sqliteDataRows(storePath: string): number {
  if (!existsSync(storePath)) return 0
  const db = new DatabaseSync(storePath, { readOnly: true })
  try {
    const tables = new Set(db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all().map((r) => String(r.name)))
    let rows = 0
    for (const t of DATA_TABLES) if (tables.has(t)) rows += Number(db.prepare(`SELECT count(*) AS n FROM ${t}`).get()?.n ?? 0)
    return rows
  } finally {
    db.close()
  }
}

/**
 * Replaces the store at `storePath` with `snapshot`: copied beside it (0600), synced, then
 * renamed over it. The old file, checkpointed first, is kept as `<store>.pre-restore-<stamp>`
 * (0600); its `-wal` and `-shm` files are removed so they cannot be replayed onto the new one.
 * Running instances must be stopped first: they would keep the old file open.
 */
export async function replaceSqliteStore(snapshot: string, storePath: string, stamp: string): Promise<string | null> {
  const target = path.resolve(storePath)
  const dir = path.dirname(target)
  await fs.mkdir(dir, { recursive: true, mode: 0o700 })
  const temp = path.join(dir, `.${path.basename(target)}.${randomBytes(6).toString('hex')}.restore`)
  const release = onInterrupt(temp, () => fs.rm(temp, { force: true }))
  let kept: string | null = null
  try {
    await fs.copyFile(snapshot, temp, constants.COPYFILE_EXCL)
    await fs.chmod(temp, 0o600)
    const handle = await fs.open(temp, 'r+')
    try {
      await handle.sync()
    } finally {
      await handle.close()
    }
    if (existsSync(target)) {
      const old = new DatabaseSync(target)
      try {
        old.exec('PRAGMA busy_timeout = 5000')
        old.exec('PRAGMA wal_checkpoint(TRUNCATE)')
      } finally {
        old.close()
      }
      kept = `${target}.pre-restore-${stamp}`
      await fs.rename(target, kept)
      await fs.chmod(kept, 0o600)
    }
    for (const suffix of ['-wal', '-shm']) await fs.rm(target + suffix, { force: true })
    await fs.rename(temp, target)
    await syncDirectory(dir)
    return kept
  } finally {
    await fs.rm(temp, { force: true })
    release()
  }
}
