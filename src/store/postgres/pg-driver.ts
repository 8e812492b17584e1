/**
 * The PostgreSQL driver: a `pg.Pool` whose errors never crash the process, BIGINT read as
 * numbers, the schema chosen through `search_path`, and a dedicated LISTEN connection for
 * change notification. A dead connection fails the call in flight with ERR_STORE_UNAVAILABLE;
 * the pool opens fresh connections for the next calls, so the store recovers by itself.
 */
import pg from 'pg'
import type { ClientConfig, PoolClient, PoolConfig, QueryResult, QueryResultRow } from 'pg'
import type { ChangeChannel, ChangeListener } from '../store.ts'
import type { SqlDriver, SqlExecutor, SqlParam, SqlRow } from '../sql/executor.ts'
import { migratePostgres } from './migrations.ts'
import { isConnectionError, mapPgError } from './pg-errors.ts'
import { PgListener } from './pg-listener.ts'

/** Options of a PostgreSQL store. */
export interface PgDriverOptions {
  /** Schema for every table (`search_path`), created if missing. Default: the server's search_path. */
  readonly schema: string | undefined
  /** Pool size. Default 10. */
  readonly max: number
  /** How long to wait for a connection before ERR_STORE_UNAVAILABLE, in ms. Default 5000. */
  readonly connectionTimeoutMs: number
  /** Server-side limit per statement, in ms. Default 30000. */
  readonly statementTimeoutMs: number
  /** Idle pooled connections close after this, in ms. Default 30000. */
  readonly idleTimeoutMs: number
  /** `application_name` of the connections (shows in `pg_stat_activity`). Default `rekey`. */
  readonly applicationName: string
  /** A direct URL for the LISTEN connection (the pool may go through PgBouncer). Default: the store URL. */
  readonly listenUrl?: string | undefined
  /** Receives errors that have no caller (an idle connection dropped, a throwing subscriber). */
  readonly onError: (err: unknown) => void
}

const INT8_OID = 20
/** Epoch milliseconds and counters fit in a double; BIGINT would otherwise arrive as strings. */
const types = {
  getTypeParser: ((oid: number, format?: string) =>
    oid === INT8_OID ? (value: string) => Number(value) : pg.types.getTypeParser(oid, format as 'text')) as typeof pg.types.getTypeParser,
}

/**
 * The pool's client: it always has an 'error' listener of its own. pg emits 'error' on a
 * client when the server ends its session (57P01 "terminating connection due to administrator
 * command", a dropped database) while no query is active; pg-pool listens only while a client
 * is idle in the pool, so a client between checkout and release, or in pg-pool's own
 * `pool.query`, could hear it with no listener and crash the process. The error is not lost:
 * the client is no longer queryable, its queries fail (mapped to ERR_STORE_UNAVAILABLE) and
 * the pool discards it on release.
 */
class GuardedClient extends pg.Client {
  constructor(config?: string | ClientConfig) {
    super(config)
    this.on('error', () => {})
  }
}

/** Errors raised by a cut-off COMMIT: the transaction may have committed, so it must not run again. */
const unsafeToRetry = new WeakSet<object>()

function markUnsafeToRetry(err: unknown): unknown {
  if (typeof err === 'object' && err !== null) unsafeToRetry.add(err)
  return err
}

function isUnsafeToRetry(err: unknown): boolean {
  return typeof err === 'object' && err !== null && unsafeToRetry.has(err)
}

/**
 * What PostgreSQL answers when a named statement is not on the connection as the client
 * believes (26000 at Bind: missing; 42P05 at Parse: already there). Through a pooler that
 * does not keep prepared statements per client (PgBouncer in transaction mode before 1.21, or
 * with `max_prepared_statements = 0`) the connection changes under the client. Either way the
 * statement did not run.
 */
const STATEMENT_NOT_AS_PREPARED = new Set(['26000', '42P05'])

type Query = (sql: string, params: readonly SqlParam[], name?: string) => Promise<{ rows: QueryResultRow[], rowCount: number | null }>

function executor(query: Query, channel: string): SqlExecutor {
  return {
    all: async (sql, params = [], name) => (await query(sql, params, name)).rows as SqlRow[],
    run: async (sql, params = []) => (await query(sql, params)).rowCount ?? 0,
    forUpdate: ' FOR UPDATE',
    notify: async (changed: ChangeChannel, userId?: string) => {
      await query('SELECT pg_notify($1, $2)', [channel, userId === undefined ? changed : `${changed}:${userId}`])
    },
    polled: false,
  }
}

export class PgDriver implements SqlDriver {
  readonly dialect = 'postgres' as const
  readonly location: string
  readonly root: SqlExecutor
  readonly lockDomain: object = {}
  readonly #pool: pg.Pool
  readonly #listener: PgListener
  readonly #retries: number
  /** Whether named statements are prepared: until the server shows they do not stay on a connection. */
  #prepare = true
  readonly #onError: (err: unknown) => void

  private constructor(location: string, pool: pg.Pool, config: ClientConfig, channel: string, retries: number, onError: (err: unknown) => void, listenConfig?: ClientConfig) {
    this.location = location
    this.#pool = pool
    this.#retries = retries
    this.#onError = onError
    // Reads outside a transaction are always safe to run again on a fresh connection.
    this.root = executor((sql, params, name) => this.#withClient(true, (client) => this.#query(client, sql, params, name)), channel)
    this.#listener = new PgListener(listenConfig ?? config, channel, onError)
  }

  /** Connects, migrates and returns the driver; ERR_STORE_UNAVAILABLE if the server does not answer. */
  static async open(url: string, location: string, opts: PgDriverOptions): Promise<PgDriver> {
    if (opts.schema !== undefined && !/^[A-Za-z_][A-Za-z0-9_]{0,62}$/.test(opts.schema)) {
      throw new TypeError('schema must be a plain identifier (letters, digits, underscore)')
    }
    const config: ClientConfig = {
      connectionString: url,
      connectionTimeoutMillis: opts.connectionTimeoutMs,
      statement_timeout: opts.statementTimeoutMs,
      application_name: opts.applicationName,
      keepAlive: true,
      types,
      ...(opts.schema === undefined ? {} : { options: `-c search_path=${opts.schema}` }),
    }
    const poolConfig: PoolConfig = { ...config, max: opts.max, idleTimeoutMillis: opts.idleTimeoutMs, Client: GuardedClient }
    const pool = new pg.Pool(poolConfig)
    // Without a listener, an idle connection dropped by the server would crash the process.
    pool.on('error', (err) => opts.onError(err))
    try {
      await migratePostgres(pool, opts.schema, location)
      const { rows } = await pool.query<{ schema: string }>('SELECT current_schema() AS schema')
      // Notifications are database-wide: one channel per schema keeps stores apart.
      const channel = `rekey_changes:${rows[0]?.schema ?? 'public'}`.slice(0, 63)
      const listenConfig = opts.listenUrl === undefined ? undefined : { ...config, connectionString: opts.listenUrl }
      return new PgDriver(location, pool, config, channel, opts.max, opts.onError, listenConfig)
    } catch (err) {
      await pool.end().catch(() => {})
      throw mapPgError(err, location)
    }
  }

  /**
   * A query outside a transaction, prepared once per connection under `name` when given. If the
   * server shows that prepared statements do not stay on a connection (a transaction-mode
   * pooler), it runs unnamed, now and from then on: it had not run, so running it is safe.
   */
  async #query(client: PoolClient, sql: string, params: readonly SqlParam[], name: string | undefined): Promise<QueryResult> {
    if (name === undefined || !this.#prepare) return client.query(sql, params as SqlParam[])
    try {
      return await client.query({ name, text: sql, values: params as SqlParam[] })
    } catch (err) {
      if (!STATEMENT_NOT_AS_PREPARED.has(String((err as { code?: unknown })?.code))) throw err
      if (this.#prepare) {
        this.#prepare = false
        this.#onError(new Error(`prepared statements do not stay on a connection here (a pooler in transaction mode?): statements run unnamed from now on (${String((err as { code?: unknown }).code)})`))
      }
      return client.query(sql, params as SqlParam[])
    }
  }

  /**
   * Runs `fn` on a pooled connection. A connection that turns out dead while in use (the server
   * terminated it while idle in the pool) is destroyed, and with `retry` the call runs again on
   * another one, up to the pool size: each retry consumes one dead idle connection, then the pool
   * connects afresh. Failures to connect are never retried here: they fail fast.
   */
  async #withClient<T>(retry: boolean, fn: (client: PoolClient) => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      const client: PoolClient = await this.#pool.connect()
      let broken = false
      // A checked-out client that loses its connection emits 'error'; unheard, it would crash the process.
      const onError = (): void => { broken = true }
      client.on('error', onError)
      try {
        return await fn(client)
      } catch (err) {
        if (isConnectionError(err)) broken = true
        if (!(broken && retry && attempt < this.#retries && !isUnsafeToRetry(err))) throw err
      } finally {
        client.off('error', onError)
        // A broken connection is destroyed instead of going back to the pool.
        client.release(broken)
      }
    }
  }

  /**
   * A write transaction. `retry` (the store's own methods) re-runs `fn` when the connection
   * died before COMMIT was sent, which is safe because nothing was committed; a COMMIT cut off
   * has an unknown outcome and is never retried. `store.transaction()` passes no retry: the
   * caller's function runs at most once.
   */
  transaction<T>(fn: (q: SqlExecutor) => Promise<T>, opts: { retry?: boolean } = {}): Promise<T> {
    return this.#withClient(opts.retry === true, async (client) => {
      const query = (sql: string, params: readonly SqlParam[]): Promise<QueryResult> => client.query(sql, params as SqlParam[])
      await client.query('BEGIN')
      let result: T
      try {
        result = await fn(executor(query, this.#listener.channel))
      } catch (err) {
        await client.query('ROLLBACK').catch(() => {})
        throw err
      }
      try {
        await client.query('COMMIT')
      } catch (err) {
        throw markUnsafeToRetry(err)
      }
      return result
    })
  }

  mapError(err: unknown): unknown {
    return mapPgError(err, this.location)
  }

  subscribe(onChange: ChangeListener): Promise<() => Promise<void>> {
    return this.#listener.add(onChange)
  }

  /** Whether the LISTEN connection is currently up. */
  get listening(): boolean {
    return this.#listener.connected
  }

  async ping(): Promise<void> {
    await this.#pool.query('SELECT 1')
  }

  async close(): Promise<void> {
    await this.#listener.close()
    await this.#pool.end()
  }
}
