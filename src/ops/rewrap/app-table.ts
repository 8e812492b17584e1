/**
 * The application table rewrap works on, in PostgreSQL or SQLite: read in key order
 * (keyset pagination), write a new value only where the row still holds the value read
 * (so a concurrent application write is never overwritten), count values per kid.
 */
import { isPostgresLocation } from '../../store/location.ts'
import path from 'node:path'
import { RekeyError } from '../../core/errors.ts'
import { maskLocation } from '../../store/errors.ts'

/** One row as read: its key, the encrypted value (or null), and the text of its AAD columns. */
export interface AppRow {
  readonly key: unknown
  readonly value: string | null
  readonly aad: readonly (string | null)[]
}

/** A new value for a row, written only if the row still holds `old`. */
export interface RowUpdate {
  readonly key: unknown
  readonly old: string
  readonly value: string
}

/** Values per kid of a column, by SQL (a full scan, no decryption). */
export interface KidCounts {
  /** kid -> values that name it (`rk1.<kid>.…`). */
  readonly kids: Record<string, number>
  /** Values that are not rekey ciphertexts. */
  readonly other: number
  readonly nulls: number
  readonly rows: number
}

/** What rewrap needs of a table. */
export interface AppTable {
  /** The database without its password, and the table, for reports. */
  readonly database: string
  readonly dialect: 'postgres' | 'sqlite'
  /** How many `writeBatch` calls may be in flight at once (on disjoint rows). */
  readonly parallelWrites: number
  /** Up to `limit` rows with key > `after` (from the start when undefined), in key order. May run while a write is in flight. */
  readBatch(after: unknown, limit: number): Promise<AppRow[]>
  /** The rows with these keys, as they are now. */
  readRows(keys: readonly unknown[]): Promise<AppRow[]>
  /** Writes each update where the row still holds `old`, in one transaction; the keys written, as text. */
  writeBatch(updates: readonly RowUpdate[]): Promise<Set<string>>
  countByKid(): Promise<KidCounts>
  /** The rows of the table (for progress: cheaper than {@link countByKid}, no string functions). */
  countRows(): Promise<number>
  close(): Promise<void>
}

/** What to open: the table, the encrypted column, the key column and the AAD columns. */
export interface TableSpec {
  /** `table` or `schema.table`. */
  readonly table: string
  readonly column: string
  readonly keyColumn: string
  readonly aadColumns: readonly string[]
}

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_$]{0,62}$/

/** A quoted identifier; refuses anything but a plain name, so no SQL can ride along. */
export function quoteIdentifier(name: string, what: string): string {
  if (!IDENTIFIER.test(name)) throw new RekeyError('ERR_CONFIG', `${what} must be a plain SQL identifier (letters, digits, _ and $), not ${JSON.stringify(name.slice(0, 80))}`)
  return `"${name}"`
}

/** `schema.table` or `table`, quoted. */
export function quoteTable(name: string): { sql: string, schema: string | undefined, table: string } {
  const parts = name.split('.')
  if (parts.length > 2) throw new RekeyError('ERR_CONFIG', `--table must be TABLE or SCHEMA.TABLE, not ${JSON.stringify(name.slice(0, 80))}`)
  const [first, second] = parts as [string, string | undefined]
  return second === undefined
    ? { sql: quoteIdentifier(first, '--table'), schema: undefined, table: first }
    : { sql: `${quoteIdentifier(first, '--table schema')}.${quoteIdentifier(second, '--table')}`, schema: first, table: second }
}

/** The AAD of a row: its AAD column values as text, joined with `:` (a single column: the value itself). */
export function rowAad(values: readonly (string | null)[]): string | undefined {
  return values.length === 0 ? undefined : values.map((v) => v ?? '').join(':')
}

/** True for a PostgreSQL URL; anything else is a SQLite file (`sqlite:` and `file:` prefixes allowed). */
export const isPostgresUrl: (url: string) => boolean = isPostgresLocation

/** The SQLite file a `--url` names. */
export function sqlitePathOf(url: string): string {
  const bare = url.replace(/^sqlite:(\/\/)?/i, '').replace(/^file:(\/\/)?/i, '')
  return path.resolve(bare)
}

/** Opens the table behind `url` (PostgreSQL URL or SQLite file); checks that the columns exist. */
export async function openAppTable(url: string, spec: TableSpec): Promise<AppTable> {
  if (isPostgresUrl(url)) {
    const { openPostgresTable } = await import('./postgres-table.ts')
    return openPostgresTable(url, spec)
  }
  const { openSqliteTable } = await import('./sqlite-table.ts')
  return openSqliteTable(sqlitePathOf(url), spec)
}

/** The database of a URL for reports and the registry: never a password. */
export function describeDatabase(url: string): string {
  return isPostgresUrl(url) ? maskLocation(url) : sqlitePathOf(url)
}
