/**
 * The stores the contract suite runs against: SQLite in a temp dir always; PostgreSQL when
 * REKEY_TEST_POSTGRES_URL is set (each database a fresh schema, dropped afterwards), or as a
 * failure when REKEY_REQUIRE_POSTGRES=1 and it is not. REKEY_TEST_STORES=sqlite (or postgres)
 * narrows the run.
 */
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pg from 'pg'
import { openStore } from '../../../src/store/open.ts'
import type { OpenStoreOptions } from '../../../src/store/open.ts'
import type { Store } from '../../../src/store/store.ts'

export const POSTGRES_URL = process.env.REKEY_TEST_POSTGRES_URL ?? ''
export const REQUIRE_POSTGRES = process.env.REKEY_REQUIRE_POSTGRES === '1'

/** A fresh, empty database and the stores ("instances") opened on it. */
export interface TestDatabase {
  /** The first instance. */
  readonly store: Store
  /** Where it lives: a SQLite file path or a PostgreSQL URL. */
  readonly location: string
  /** The options every instance is opened with (PostgreSQL: schema and application name). */
  readonly options: OpenStoreOptions
  /** Another instance on the same database: a second SQLite connection, or a second PostgreSQL pool. */
  open(opts?: OpenStoreOptions): Promise<Store>
  /** Closes every instance and removes the database. */
  destroy(): Promise<void>
}

export interface StoreFactory {
  readonly name: 'sqlite' | 'postgres'
  /** A reason to skip this dialect, shown in the test report, or false. */
  readonly skip: string | false
  create(opts?: OpenStoreOptions): Promise<TestDatabase>
}

function database(location: string, options: OpenStoreOptions, cleanup: () => Promise<void>): (opts?: OpenStoreOptions) => Promise<TestDatabase> {
  return async (opts = {}) => {
    const opened: Store[] = []
    const open = async (more: OpenStoreOptions = {}): Promise<Store> => {
      const store = await openStore(location, { ...options, ...opts, ...more })
      opened.push(store)
      return store
    }
    const store = await open()
    return {
      store,
      location,
      options: { ...options, ...opts },
      open,
      async destroy() {
        await Promise.allSettled(opened.map((s) => s.close()))
        await cleanup()
      },
    }
  }
}

export const sqliteFactory: StoreFactory = {
  name: 'sqlite',
  skip: false,
  create(opts) {
    const dir = mkdtempSync(join(tmpdir(), 'rekey-store-'))
    return database(join(dir, 'db', 'rekey.db'), {}, async () => rmSync(dir, { recursive: true, force: true }))(opts)
  },
}

/** Runs one statement on a short-lived connection (a URL or a pg client config). */
export async function queryOnce(connection: string | pg.ClientConfig, sql: string, params: unknown[] = []): Promise<pg.QueryResult> {
  const config = typeof connection === 'string' ? { connectionString: connection } : connection
  const client = new pg.Client({ connectionTimeoutMillis: 5000, ...config })
  client.on('error', () => {})
  await client.connect()
  try {
    return await client.query(sql, params)
  } finally {
    await client.end()
  }
}

/** Runs one statement on a short-lived admin connection to the test database. */
export async function adminQuery(sql: string, params: unknown[] = []): Promise<pg.QueryResult> {
  return await queryOnce(POSTGRES_URL, sql, params)
}

/** A schema name no other run uses. */
export function freshSchema(): string {
  return `rekey_test_${randomBytes(6).toString('hex')}`
}

export const postgresFactory: StoreFactory = {
  name: 'postgres',
  skip: POSTGRES_URL !== '' || REQUIRE_POSTGRES ? false : 'REKEY_TEST_POSTGRES_URL is not set; PostgreSQL store tests skipped',
  async create(opts) {
    if (POSTGRES_URL === '') throw new Error('REKEY_REQUIRE_POSTGRES=1 but REKEY_TEST_POSTGRES_URL is not set')
    const schema = freshSchema()
    const options: OpenStoreOptions = { schema, applicationName: `rekey-test-${schema}`, max: 5 }
    return database(POSTGRES_URL, options, async () => { await adminQuery(`DROP SCHEMA IF EXISTS ${schema} CASCADE`) })(opts)
  },
}

const only = (process.env.REKEY_TEST_STORES ?? '').split(',').map((s) => s.trim()).filter((s) => s !== '')

/** Every store the suite runs against: `for (const factory of STORES) describe(factory.name, ...)`. */
export const STORES: readonly StoreFactory[] = [sqliteFactory, postgresFactory].filter((f) => only.length === 0 || only.includes(f.name))
