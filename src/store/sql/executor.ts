/**
 * The small driver contract the shared SQL logic runs on. Each dialect implements it once;
 * every query of the store is written once, with `$1`-style placeholders (the SQLite driver
 * rewrites them to `?1`), and only the differences below reach the logic.
 */
import type { ChangeChannel, ChangeListener } from '../store.ts'

/** A bound value: the store only stores text, integers and NULL. */
export type SqlParam = string | number | null

/** A row as the driver returns it; columns are snake_case. */
export type SqlRow = Readonly<Record<string, unknown>>

/** Runs statements, either on its own or inside one open transaction. */
export interface SqlExecutor {
  /**
   * Every row of a query (also `... RETURNING`). `name`, for a statement on a hot path: the
   * driver may prepare it once per connection under that name (PostgreSQL: parsed and
   * planned once, not on every call); SQLite caches every statement anyway.
   */
  all(sql: string, params?: readonly SqlParam[], name?: string): Promise<SqlRow[]>
  /** A statement; how many rows it changed. */
  run(sql: string, params?: readonly SqlParam[]): Promise<number>
  /**
   * Appended to a SELECT that must lock the rows it reads until commit: ` FOR UPDATE` on
   * PostgreSQL. Empty on SQLite, where a write transaction already holds the database lock.
   */
  readonly forUpdate: string
  /**
   * Signals `channel` to other instances at commit (PostgreSQL NOTIFY; a no-op on SQLite, which
   * polls), optionally naming the one user it concerns.
   */
  notify(channel: ChangeChannel, userId?: string): Promise<void>
  /** True when other instances learn of changes only by polling the change counters (SQLite). */
  readonly polled: boolean
}

/** One open database behind the shared logic. */
export interface SqlDriver {
  readonly dialect: 'sqlite' | 'postgres'
  /** Safe to log. */
  readonly location: string
  /** Statements outside any transaction. */
  readonly root: SqlExecutor
  /**
   * Identifies what a transaction locks (the SQLite file, the PostgreSQL store), so that a call
   * to the store from inside its own transaction is refused instead of waiting forever.
   */
  readonly lockDomain: object
  /**
   * Runs `fn` in a write transaction: commit if it resolves, roll back if it throws. With
   * `retry`, the driver may run `fn` again on a fresh connection if the first one died before
   * COMMIT (nothing was committed); only for functions with no effect outside the database.
   */
  transaction<T>(fn: (q: SqlExecutor) => Promise<T>, opts?: { retry?: boolean }): Promise<T>
  /** A driver error as the caller should see it: ERR_CONFLICT, ERR_STORE_UNAVAILABLE, or unchanged. */
  mapError(err: unknown): unknown
  subscribe(onChange: ChangeListener): Promise<() => Promise<void>>
  ping(): Promise<void>
  close(): Promise<void>
}

/** Reads a column that is NOT NULL text. */
export function text(row: SqlRow, column: string): string {
  return String(row[column])
}

/** Reads a nullable text column. */
export function textOrNull(row: SqlRow, column: string): string | null {
  const value = row[column]
  return value === null || value === undefined ? null : String(value)
}

/** Reads a NOT NULL integer column (PostgreSQL BIGINT arrives as a number too, see the pool's type parser). */
export function int(row: SqlRow, column: string): number {
  return Number(row[column])
}

/** Reads a nullable integer column. */
export function intOrNull(row: SqlRow, column: string): number | null {
  const value = row[column]
  return value === null || value === undefined ? null : Number(value)
}
