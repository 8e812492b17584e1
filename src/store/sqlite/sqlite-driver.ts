/**
 * The SQLite driver: one `node:sqlite` connection, WAL, a busy timeout, foreign keys, files
 * 0600. Synchronous underneath; the async contract is kept by running every call under the
 * file's mutex, so a transaction spanning awaits is never interleaved with another call.
 */
import { DatabaseSync } from 'node:sqlite'
import type { SQLInputValue, StatementSync } from 'node:sqlite'
import type { ChangeListener } from '../store.ts'
import { readChangeCounters } from '../sql/changes.ts'
import type { SqlDriver, SqlExecutor, SqlParam, SqlRow } from '../sql/executor.ts'
import { ChangePoller } from './change-poller.ts'
import { acquireFileMutex, releaseFileMutex } from './file-mutex.ts'
import type { Mutex } from './file-mutex.ts'
import { migrateSqlite } from './migrations.ts'
import { mapSqliteError } from './sqlite-errors.ts'
import { prepareDatabaseFile, tightenCompanionFiles } from './sqlite-file.ts'

/** Options of a SQLite store. */
export interface SqliteDriverOptions {
  /** How long a write waits for another process's lock before ERR_STORE_UNAVAILABLE, in ms. Default 5000. */
  readonly busyTimeoutMs: number
  /** How often subscribers' change counters are polled, in ms. Default 250. */
  readonly pollIntervalMs: number
  /** Receives errors that have no caller (a failed poll, a throwing subscriber). */
  readonly onError: (err: unknown) => void
}

/** Cached prepared statements per connection; bounded because batch inserts vary in length. */
const STATEMENT_CACHE_SIZE = 256

export class SqliteDriver implements SqlDriver {
  readonly dialect = 'sqlite' as const
  readonly location: string
  readonly root: SqlExecutor
  readonly lockDomain: Mutex
  readonly #db: DatabaseSync
  readonly #file: string
  readonly #tx: SqlExecutor
  readonly #statements = new Map<string, StatementSync>()
  readonly #poller: ChangePoller

  /** Opens (creating if needed) and migrates the database at `path`. Synchronous. */
  constructor(path: string, opts: SqliteDriverOptions) {
    this.location = path
    this.#file = prepareDatabaseFile(path)
    this.lockDomain = acquireFileMutex(this.#file)
    try {
      this.#db = new DatabaseSync(this.#file, { enableForeignKeyConstraints: true })
      // busy_timeout first: switching to WAL needs a lock another process may hold.
      this.#db.exec(`PRAGMA busy_timeout = ${opts.busyTimeoutMs}`)
      this.#db.exec('PRAGMA journal_mode = WAL')
      // NORMAL is crash-safe in WAL mode; only an OS crash may lose the last commits, never consistency.
      this.#db.exec('PRAGMA synchronous = NORMAL')
      this.#db.exec('PRAGMA foreign_keys = ON')
      migrateSqlite(this.#db)
      tightenCompanionFiles(this.#file)
    } catch (err) {
      releaseFileMutex(this.#file)
      throw mapSqliteError(err, this.location)
    }
    const mutex = this.lockDomain
    const notify = async (): Promise<void> => {} // SQLite instances poll the counters instead
    this.root = {
      all: (sql, params) => mutex.run(() => this.#all(sql, params)),
      run: (sql, params) => mutex.run(() => this.#run(sql, params)),
      forUpdate: '',
      notify,
      polled: true,
    }
    // Only handed to code already holding the mutex inside BEGIN IMMEDIATE.
    this.#tx = {
      all: async (sql, params) => this.#all(sql, params),
      run: async (sql, params) => this.#run(sql, params),
      forUpdate: '',
      notify,
      polled: true,
    }
    this.#poller = new ChangePoller(() => readChangeCounters(this.root), opts.pollIntervalMs, opts.onError)
  }

  #statement(sql: string): StatementSync {
    let statement = this.#statements.get(sql)
    if (statement === undefined) {
      // The shared SQL uses PostgreSQL's $1; SQLite reads the same numbering as ?1.
      statement = this.#db.prepare(sql.replace(/\$(\d+)/g, '?$1'))
      if (this.#statements.size >= STATEMENT_CACHE_SIZE) this.#statements.clear()
      this.#statements.set(sql, statement)
    }
    return statement
  }

  #all(sql: string, params: readonly SqlParam[] = []): SqlRow[] {
    return this.#statement(sql).all(...(params as SQLInputValue[])) as SqlRow[]
  }

  #run(sql: string, params: readonly SqlParam[] = []): number {
    return Number(this.#statement(sql).run(...(params as SQLInputValue[])).changes)
  }

  transaction<T>(fn: (q: SqlExecutor) => Promise<T>): Promise<T> {
    return this.lockDomain.run(async () => {
      // IMMEDIATE takes the write lock now, so reads inside see what no other writer can change.
      this.#db.exec('BEGIN IMMEDIATE')
      try {
        const result = await fn(this.#tx)
        this.#db.exec('COMMIT')
        return result
      } catch (err) {
        if (this.#db.isTransaction) this.#db.exec('ROLLBACK')
        throw err
      }
    })
  }

  mapError(err: unknown): unknown {
    return mapSqliteError(err, this.location)
  }

  subscribe(onChange: ChangeListener): Promise<() => Promise<void>> {
    return this.#poller.add(onChange)
  }

  async ping(): Promise<void> {
    await this.root.all('SELECT 1 AS ok')
  }

  async close(): Promise<void> {
    this.#poller.stop()
    // Waits for a transaction in flight, then closes under the lock.
    await this.lockDomain.run(() => {
      this.#statements.clear()
      if (this.#db.isOpen) this.#db.close()
    })
    releaseFileMutex(this.#file)
  }
}
