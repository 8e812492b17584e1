/**
 * Only rekey's own schema is ever restored. A snapshot may carry objects rekey never creates:
 * a trigger that makes every new user an admin, a view, a function, an extra table. Planted by
 * someone with write access to the database (and then faithfully backed up) or built into a
 * forged archive, they would run with the service's rights after a restore. So backups refuse
 * to take them and restores refuse to put them back, naming each one.
 *
 * The reference is rekey's own migrations, never a list kept by hand: SQLite compares the
 * snapshot's `sqlite_master` with a fresh in-memory database migrated to the same version,
 * definition for definition; PostgreSQL reads the dump's table of contents (`pg_restore -l`)
 * and accepts only the entry kinds and names the migrations create.
 */
import { DatabaseSync } from 'node:sqlite'
import { POSTGRES_MIGRATIONS } from '../../store/postgres/migrations.ts'
import { SQLITE_MIGRATIONS } from '../../store/sqlite/migrations.ts'

interface SqliteObject { type: string, name: string, tbl: string, sql: string | null }

const describeObject = (o: SqliteObject): string => `${o.type} ${o.name}${o.type === 'table' || o.tbl === o.name ? '' : ` on ${o.tbl}`}`

function sqliteObjects(db: DatabaseSync): Map<string, SqliteObject> {
  const rows = db.prepare("SELECT type, name, tbl_name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_stat%' ORDER BY type, name").all()
  return new Map(rows.map((r) => {
    const o = { type: String(r.type), name: String(r.name), tbl: String(r.tbl_name), sql: r.sql === null ? null : String(r.sql) }
    return [`${o.type}:${o.name}`, o]
  }))
}

/** sqlite_master of a store freshly migrated to `version`. */
function referenceSqlite(version: number): Map<string, SqliteObject> {
  const db = new DatabaseSync(':memory:')
  try {
    db.exec('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)')
    for (const m of SQLITE_MIGRATIONS) if (m.version <= version) db.exec(m.sql)
    return sqliteObjects(db)
  } finally {
    db.close()
  }
}

/**
 * The objects of the SQLite database `db` (at schema `version`) that are not rekey's own or
 * differ from rekey's definition, and rekey's objects it lacks; empty when it is exactly rekey's.
 */
export function foreignSqliteObjects(db: DatabaseSync, version: number): string[] {
  const reference = referenceSqlite(version)
  const found = sqliteObjects(db)
  const problems: string[] = []
  for (const [key, o] of found) {
    const own = reference.get(key)
    if (own === undefined) problems.push(describeObject(o))
    else if (own.sql !== o.sql || own.tbl !== o.tbl) problems.push(`${describeObject(o)} (its definition differs from rekey's)`)
  }
  for (const [key, o] of reference) if (!found.has(key)) problems.push(`missing ${describeObject(o)}`)
  return problems
}

/** One line of `pg_restore -l`: `214; 1259 19602 TABLE public users postgres`. */
export interface TocEntry {
  readonly line: string
  readonly kind: string
  readonly schema: string
  readonly name: string
}

/** Entry kinds of a rekey dump, longest first so `TABLE DATA` is not read as `TABLE`. */
const KNOWN_KINDS = ['SEQUENCE OWNED BY', 'SEQUENCE SET', 'FK CONSTRAINT', 'TABLE DATA', 'CONSTRAINT', 'SEQUENCE', 'COMMENT', 'DEFAULT', 'SCHEMA', 'INDEX', 'TABLE']

/** Parses the output of `pg_restore -l` (comment lines skipped). */
export function parseToc(text: string): TocEntry[] {
  const entries: TocEntry[] = []
  for (const line of text.split('\n')) {
    const match = /^\d+; \d+ \d+ (.*)$/.exec(line.trim())
    if (match === null) continue
    const rest = match[1] as string
    const kind = KNOWN_KINDS.find((k) => rest.startsWith(`${k} `)) ?? rest.split(' ')[0] ?? ''
    const [schema = '', ...name] = rest.slice(kind.length + 1).split(' ')
    // The owner is the last word; --no-owner dumps still name it.
    entries.push({ line: line.trim(), kind, schema, name: name.slice(0, -1).join(' ') })
  }
  return entries
}

const ownTables = (): Set<string> => new Set(['schema_migrations', ...POSTGRES_MIGRATIONS.flatMap((m) => [...m.sql.matchAll(/CREATE TABLE (?:IF NOT EXISTS )?([a-z_][a-z0-9_]*)/g)].map((x) => x[1] as string))])
/** Functions rekey's migrations install (the one-round-trip refresh), by name. */
const ownFunctions = (): Set<string> => new Set(POSTGRES_MIGRATIONS.flatMap((m) => [...m.sql.matchAll(/CREATE (?:OR REPLACE )?FUNCTION ([a-z_][a-z0-9_]*)\(/g)].map((x) => x[1] as string)))

const ownIndexes = (): Set<string> => new Set(POSTGRES_MIGRATIONS.flatMap((m) => [...m.sql.matchAll(/CREATE (?:UNIQUE )?INDEX (?:IF NOT EXISTS )?([a-z_][a-z0-9_]*)/g)].map((x) => x[1] as string)))

/**
 * The entries of a PostgreSQL dump of `schema` that rekey's migrations do not create
 * (a trigger, a view, a function, a rule, a policy, an extra table, another schema...).
 */
export function foreignPostgresEntries(entries: readonly TocEntry[], schema: string): string[] {
  const tables = ownTables()
  const indexes = ownIndexes()
  const functions = ownFunctions()
  const problems: string[] = []
  for (const e of entries) {
    let own: boolean
    switch (e.kind) {
      case 'SCHEMA': own = e.schema === '-' && e.name === schema; break
      case 'COMMENT': own = e.schema === '-' && e.name === `SCHEMA ${schema}`; break
      case 'TABLE':
      case 'TABLE DATA': own = e.schema === schema && tables.has(e.name); break
      case 'INDEX': own = e.schema === schema && indexes.has(e.name); break
      // By name and schema only: a body altered in the source store is not detected here (the MAC covers the archive, not the store before it).
      case 'FUNCTION': own = e.schema === schema && functions.has(e.name.split('(')[0] as string); break
      case 'CONSTRAINT':
      case 'FK CONSTRAINT': {
        // "users users_email_key": the table, then a constraint named after it (PostgreSQL's names).
        const [table = '', constraint = ''] = e.name.split(' ')
        own = e.schema === schema && tables.has(table) && constraint.startsWith(`${table}_`)
        break
      }
      // A serial/identity column of a later migration: its sequence is named after its table.
      case 'SEQUENCE':
      case 'SEQUENCE OWNED BY':
      case 'SEQUENCE SET': own = e.schema === schema && /_seq$/.test(e.name) && [...tables].some((t) => e.name.startsWith(`${t}_`)); break
      case 'DEFAULT': own = e.schema === schema && tables.has(e.name.split(' ')[0] ?? ''); break
      default: own = false
    }
    if (!own) problems.push(`${e.kind.toLowerCase()} ${e.schema === '-' ? '' : `${e.schema}.`}${e.name}`)
  }
  return problems
}
