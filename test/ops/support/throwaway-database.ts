/**
 * A throwaway PostgreSQL database on the shared test server for a runbook that rotates the
 * application's database user: a random suffix on the database and its roles, a table owned by
 * the application user (as a first deployment leaves it), all dropped afterwards.
 */
import { randomBytes } from 'node:crypto'
import { POSTGRES_URL, REQUIRE_POSTGRES, queryOnce } from '../../store/support/stores.ts'

/** Why the tests that need it are skipped, or false (with REKEY_REQUIRE_POSTGRES=1, never skipped). */
export const POSTGRES_SKIP: string | false = POSTGRES_URL === '' && !REQUIRE_POSTGRES
  ? 'REKEY_TEST_POSTGRES_URL is not set; the runbook needs a PostgreSQL'
  : false

export interface ThrowawayDatabase {
  /** The application's URL: its login user and password, as a committed .env would hold it. */
  readonly appUrl: string
  readonly appUser: string
  readonly appPassword: string
  /** The test server's admin on this database (REKEY_DB_ADMIN_URL). */
  readonly adminUrl: string
  /** Drops the database and every role of the suffix (the blue/green users included). */
  drop(): Promise<void>
}

const run = async (url: string, sql: string): Promise<void> => { await queryOnce(url, sql) }

export async function throwawayDatabase(): Promise<ThrowawayDatabase> {
  if (POSTGRES_URL === '') throw new Error('REKEY_REQUIRE_POSTGRES=1 but REKEY_TEST_POSTGRES_URL is not set')
  const suffix = randomBytes(4).toString('hex')
  const database = `rekey_leak_${suffix}`
  const appUser = `shop_${suffix}`
  const appPassword = `leaked-db-${randomBytes(12).toString('hex')}`
  const adminUrl = new URL(POSTGRES_URL)
  adminUrl.pathname = `/${database}`
  const appUrl = new URL(adminUrl)
  appUrl.username = appUser
  appUrl.password = appPassword
  const drop = async (): Promise<void> => {
    await run(POSTGRES_URL, `DROP DATABASE IF EXISTS ${database} WITH (FORCE)`)
    await run(POSTGRES_URL, `DROP ROLE IF EXISTS ${appUser}_blue, ${appUser}_green, ${appUser}`)
  }
  try {
    await run(POSTGRES_URL, `CREATE ROLE ${appUser} LOGIN PASSWORD '${appPassword}'`)
    await run(POSTGRES_URL, `CREATE DATABASE ${database}`)
    await run(adminUrl.href, `CREATE TABLE orders (id int); INSERT INTO orders VALUES (1), (2); ALTER TABLE orders OWNER TO ${appUser}`)
  } catch (err) {
    await drop().catch(() => {})
    throw err
  }
  return { appUrl: appUrl.href, appUser, appPassword, adminUrl: adminUrl.href, drop }
}

/** Logs in with `url`: the session user and the rows it reads, or the server's refusal. */
export async function loginAs(url: string): Promise<{ user?: string, orders?: number, error?: string }> {
  try {
    const { rows } = await queryOnce(url, 'SELECT session_user AS user, (SELECT count(*)::int FROM orders) AS orders')
    return { user: rows[0]?.user as string, orders: rows[0]?.orders as number }
  } catch (err) {
    return { error: (err as Error).message }
  }
}
