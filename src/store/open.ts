/**
 * Opening a store: a `postgres://` or `postgresql://` URL opens PostgreSQL, anything else is a
 * SQLite file path (the caller decides the default, `./.rekey/rekey.db`). Migrations run before
 * the store is returned.
 */
import { RekeyError } from '../core/errors.ts'
import { maskLocation } from './errors.ts'
import { isPostgresLocation, storeLocationProblem } from './location.ts'
import { PgDriver } from './postgres/pg-driver.ts'
import { SqlStore } from './sql/sql-store.ts'
import { SqliteDriver } from './sqlite/sqlite-driver.ts'
import type { Store } from './store.ts'

/** Options of {@link openStore}; each applies to one dialect and is ignored by the other. */
export interface OpenStoreOptions {
  /** SQLite: how long a write waits for another process's lock, in ms. Default 5000. */
  readonly busyTimeoutMs?: number
  /** SQLite: how often subscribers' change counters are polled, in ms. Default 250. */
  readonly pollIntervalMs?: number
  /** PostgreSQL: schema of every table (`search_path`), created if missing. Default: the server's search_path. */
  readonly schema?: string
  /** PostgreSQL: pool size. Default 10. */
  readonly max?: number
  /**
   * PostgreSQL: a direct URL for the LISTEN connection, when `urlOrPath` goes through a pooler
   * in transaction mode (PgBouncer), where LISTEN does not work. Default: `urlOrPath`.
   */
  readonly listenUrl?: string
  /** PostgreSQL: wait for a connection at most this long before ERR_STORE_UNAVAILABLE, in ms. Default 5000. */
  readonly connectionTimeoutMs?: number
  /** PostgreSQL: server-side limit per statement, in ms. Default 30000. */
  readonly statementTimeoutMs?: number
  /** PostgreSQL: idle connections close after this, in ms. Default 30000. */
  readonly idleTimeoutMs?: number
  /** PostgreSQL: `application_name` of the connections. Default `rekey`. */
  readonly applicationName?: string
  /** Errors no caller is waiting for (a dropped idle connection, a failed poll, a throwing subscriber). Default: ignored. */
  readonly onError?: (err: unknown) => void
}

/** Reads a positive integer option, or its default; every bad option is listed at once. */
function positive(name: keyof OpenStoreOptions, value: number | undefined, fallback: number, problems: string[]): number {
  if (value === undefined) return fallback
  if (!Number.isSafeInteger(value) || value <= 0) problems.push(`${name} must be a positive integer (milliseconds or a count)`)
  return value
}

/** Opens the store at `urlOrPath`, creating and migrating it if needed. */
export async function openStore(urlOrPath: string, opts: OpenStoreOptions = {}): Promise<Store> {
  if (typeof urlOrPath !== 'string' || urlOrPath.trim() === '') throw new TypeError('the store location must be a non-empty string')
  const problems: string[] = []
  const onError = opts.onError ?? (() => {})
  const location = maskLocation(urlOrPath)
  // Never a directory named after a mistyped URL: every instance would get a store of its own.
  const problem = storeLocationProblem(urlOrPath)
  if (problem !== undefined) throw new RekeyError('ERR_CONFIG', `store location ${problem}`)
  if (isPostgresLocation(urlOrPath)) {
    const config = Object.freeze({
      schema: opts.schema,
      max: positive('max', opts.max, 10, problems),
      connectionTimeoutMs: positive('connectionTimeoutMs', opts.connectionTimeoutMs, 5000, problems),
      statementTimeoutMs: positive('statementTimeoutMs', opts.statementTimeoutMs, 30_000, problems),
      idleTimeoutMs: positive('idleTimeoutMs', opts.idleTimeoutMs, 30_000, problems),
      applicationName: opts.applicationName ?? 'rekey',
      listenUrl: opts.listenUrl,
      onError,
    })
    if (opts.listenUrl !== undefined && !isPostgresLocation(opts.listenUrl)) problems.push('listenUrl must be a postgres:// URL')
    if (problems.length > 0) throw new TypeError(`invalid store options: ${problems.join('; ')}`)
    return new SqlStore(await PgDriver.open(urlOrPath, location, config))
  }
  const config = Object.freeze({
    busyTimeoutMs: positive('busyTimeoutMs', opts.busyTimeoutMs, 5000, problems),
    pollIntervalMs: positive('pollIntervalMs', opts.pollIntervalMs, 250, problems),
    onError,
  })
  if (problems.length > 0) throw new TypeError(`invalid store options: ${problems.join('; ')}`)
  return new SqlStore(new SqliteDriver(urlOrPath, config))
}
