/**
 * The few statements credential rotation runs on PostgreSQL, through one admin connection.
 * Role names are checked ({@link isPlainRoleName}) and quoted; passwords travel as SCRAM
 * verifiers. Error messages name the masked URL and PostgreSQL's reason, never a password.
 *
 * A connection that fails is `ERR_CONFIG` (exit 2) for the admin URL, which the operator
 * gives, and a plain `Error` (exit 1: the check said no) for the URL being tested.
 */
import pg from 'pg'
import { RekeyError } from '../../core/errors.ts'
import { maskUrl } from './alternating-users.ts'
import { scramVerifier } from './scram.ts'

/** How long a connection attempt may take, ms. */
const CONNECT_TIMEOUT_MS = 10_000

/** What rotation needs to know of a role. */
export interface RoleInfo {
  readonly name: string
  readonly canLogin: boolean
  readonly superuser: boolean
  readonly inherit: boolean
}

/** Why a connection failed, with any occurrence of the password cut out. */
function reasonOf(err: unknown, url: string): string {
  const message = err instanceof Error ? err.message : String(err)
  let password = ''
  try {
    password = decodeURIComponent(new URL(url).password)
  } catch { /* not a URL: nothing to cut */ }
  // Drivers do not echo passwords today; this keeps it so if one ever does.
  return password === '' ? message : message.split(password).join('***')
}

/** Whose URL it is: the operator's admin URL (a failure is configuration) or one under test. */
export type UrlRole = 'admin' | 'tested'

/** Opens a client on `url`; a failure names the masked URL and PostgreSQL's reason. */
export async function connect(url: string, what: string, role: UrlRole): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: CONNECT_TIMEOUT_MS, application_name: 'rekey rotate-db' })
  client.on('error', () => { /* a dropped idle connection surfaces on the next query */ })
  try {
    await client.connect()
    return client
  } catch (err) {
    await client.end().catch(() => {})
    const message = `cannot connect with ${what} (${maskUrl(url)}): ${reasonOf(err, url)}`
    // No cause attached: driver errors are kept out of reports on purpose.
    throw role === 'admin' ? new RekeyError('ERR_CONFIG', message) : new Error(message)
  }
}

/** Runs `fn` on a fresh connection to `url` and closes it. */
export async function withClient<T>(url: string, what: string, role: UrlRole, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = await connect(url, what, role)
  try {
    return await fn(client)
  } finally {
    await client.end().catch(() => {})
  }
}

/** The role named `name`, or `null`. */
export async function roleInfo(client: pg.Client, name: string): Promise<RoleInfo | null> {
  const { rows } = await client.query<{ rolname: string, rolcanlogin: boolean, rolsuper: boolean, rolinherit: boolean }>(
    'SELECT rolname, rolcanlogin, rolsuper, rolinherit FROM pg_roles WHERE rolname = $1', [name])
  const row = rows[0]
  return row === undefined ? null : { name: row.rolname, canLogin: row.rolcanlogin, superuser: row.rolsuper, inherit: row.rolinherit }
}

/** Who the admin connection is. */
export async function currentUserOf(client: pg.Client): Promise<string> {
  const { rows } = await client.query<{ u: string }>('SELECT session_user AS u')
  return rows[0]?.u ?? ''
}

/**
 * Gives `user` a login with `password` and membership in `appRole` (with INHERIT, so it has the
 * role's grants), creating it when missing. Returns whether it was created.
 */
export async function enableLoginUser(client: pg.Client, user: string, appRole: string, password: string): Promise<boolean> {
  const verifier = client.escapeLiteral(scramVerifier(password))
  const u = client.escapeIdentifier(user)
  const existing = await roleInfo(client, user)
  if (existing === null) {
    await client.query(`CREATE ROLE ${u} WITH LOGIN INHERIT PASSWORD ${verifier}`)
  } else {
    await client.query(`ALTER ROLE ${u} WITH LOGIN INHERIT PASSWORD ${verifier}`)
  }
  const { rows } = await client.query<{ member: boolean }>(
    'SELECT EXISTS (SELECT 1 FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid JOIN pg_roles u ON u.oid = m.member WHERE r.rolname = $1 AND u.rolname = $2) AS member',
    [appRole, user])
  if (rows[0]?.member !== true) await client.query(`GRANT ${client.escapeIdentifier(appRole)} TO ${u}`)
  return existing === null
}

/** Undoes {@link enableLoginUser} after a failed test: drops a role it created, else restores `canLogin`. */
export async function undoEnable(client: pg.Client, user: string, created: boolean, canLoginBefore: boolean): Promise<void> {
  const u = client.escapeIdentifier(user)
  if (created) await client.query(`DROP ROLE IF EXISTS ${u}`)
  else if (!canLoginBefore) await client.query(`ALTER ROLE ${u} WITH NOLOGIN`)
}

/** Sessions of `user` open now, with where they come from (for the operator, no queries). */
export async function sessionsOf(client: pg.Client, user: string): Promise<Array<{ pid: number, application: string, client: string }>> {
  const { rows } = await client.query<{ pid: number, application_name: string | null, client_addr: string | null }>(
    'SELECT pid, application_name, client_addr::text AS client_addr FROM pg_stat_activity WHERE usename = $1 AND pid <> pg_backend_pid()', [user])
  return rows.map((r) => ({ pid: r.pid, application: r.application_name ?? '', client: r.client_addr ?? 'local' }))
}

/** Turns `user`'s login off; with `terminate`, also ends its open sessions. Returns how many ended. */
export async function disableLogin(client: pg.Client, user: string, terminate: boolean): Promise<number> {
  await client.query(`ALTER ROLE ${client.escapeIdentifier(user)} WITH NOLOGIN`)
  if (!terminate) return 0
  const { rows } = await client.query<{ ended: boolean }>(
    'SELECT pg_terminate_backend(pid) AS ended FROM pg_stat_activity WHERE usename = $1 AND pid <> pg_backend_pid()', [user])
  return rows.filter((r) => r.ended).length
}

/**
 * Logs in with `url` as an application would and checks who it is: `SELECT 1`, the session
 * user, and membership in `appRole`. Throws an `Error` (exit 1) saying what failed.
 */
export async function testLogin(url: string, expectedUser: string, appRole: string): Promise<void> {
  await withClient(url, 'the new URL', 'tested', async (client) => {
    const { rows } = await client.query<{ ok: number, session_user: string, current_user: string, member: boolean }>(
      "SELECT 1 AS ok, session_user, current_user, pg_has_role(session_user, $1, 'USAGE') AS member", [appRole])
    const row = rows[0]
    if (row?.ok !== 1 || row.session_user !== expectedUser) {
      throw new Error(`the new URL logged in as "${row?.session_user ?? '?'}", not "${expectedUser}"`)
    }
    if (!row.member) throw new Error(`"${expectedUser}" does not have the grants of "${appRole}"`)
  })
}
