/**
 * A PostgreSQL store URL or role that cannot hold a store, told as ERR_CONFIG (exit 2) with
 * what to change, before anything is created: a search_path that leads to no schema or to a
 * system one (pg_catalog, information_schema, pg_temp*, pg_toast*), a `-c NAME=VALUE` of
 * `options` the server refuses at connect, a role without the privilege to create rekey's
 * tables. Messages name the parameter, schema, role and privilege, never a value of the URL.
 */
import type { PoolClient } from 'pg'
import { RekeyError } from '../../core/errors.ts'

/** How a store URL names its schema. */
const SCHEMA_OPTION = '?options=-c%20search_path%3DNAME'

/** Where rekey is about to create its tables, and as whom (for messages). */
export interface StoreSchema {
  readonly schema: string
  readonly role: string
}

/**
 * Schemas PostgreSQL keeps for itself: `pg_*` (pg_catalog, pg_toast, and each session's
 * pg_temp_N, dropped when the connection ends) and information_schema. Tables created there
 * are lost, refused, or mixed into the system catalog.
 */
export function isSystemSchema(name: string): boolean {
  return name.startsWith('pg_') || name === 'information_schema'
}

/**
 * The schema rekey's tables go to (the first usable one of the search_path); ERR_CONFIG when
 * it names none (a typo in `options=-c search_path=...`, where PostgreSQL would only say "no
 * schema has been selected to create in") or a system schema.
 */
export async function usableSchema(client: PoolClient): Promise<StoreSchema> {
  const { rows } = await client.query<{ schema: string | null, path: string, role: string }>(
    "SELECT current_schema() AS schema, current_setting('search_path') AS path, current_user AS role")
  const row = rows[0] as { schema: string | null, path: string, role: string }
  const names = row.path.split(',').map((name) => name.trim()).filter((name) => name !== '' && name !== '""' && name !== "''")
  const path = names.join(', ')
  if (row.schema === null) {
    if (names.length === 0) throw new RekeyError('ERR_CONFIG', `the PostgreSQL store's search_path is empty: name a schema with ${SCHEMA_OPTION}`)
    const what = names.length === 1
      ? `the PostgreSQL store's schema ${names[0]} does not exist: create it (CREATE SCHEMA ${names[0]})`
      : `none of the schemas of the PostgreSQL store's search_path (${path}) exists: create one (CREATE SCHEMA name)`
    throw new RekeyError('ERR_CONFIG', `${what} or name an existing one with ${SCHEMA_OPTION}`)
  }
  if (isSystemSchema(row.schema)) {
    const via = row.schema === path ? '' : ` (its search_path is ${path})`
    throw new RekeyError('ERR_CONFIG', `the PostgreSQL store's schema would be ${row.schema}${via}, a system schema of PostgreSQL: rekey keeps its tables in a schema of its own; name one with ${SCHEMA_OPTION}`)
  }
  return { schema: row.schema, role: row.role }
}

function codeOf(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code
  return typeof code === 'string' ? code : undefined
}

/**
 * What the server says of the startup parameters (a URL's `options=-c NAME=VALUE`) it refuses:
 * 42704 unrecognized, 22023 invalid value, 42501 not allowed to set. The quoted name is kept;
 * the value, which PostgreSQL echoes, is not.
 */
const REFUSED_PARAMETER = /^(unrecognized configuration parameter|invalid value for parameter|permission denied to set parameter) "([^"]{1,63})"/

/** ERR_CONFIG for a connection refused because of a parameter the URL sets; `undefined` for any other error. */
export function refusedParameter(err: unknown, location: string): RekeyError | undefined {
  if (!(err instanceof Error) || !['42704', '22023', '42501'].includes(codeOf(err) ?? '')) return undefined
  const match = REFUSED_PARAMETER.exec(err.message)
  if (match === null) return undefined
  const [, reason, name] = match as unknown as [string, string, string]
  // The URL is shown without its query: the refused value may be anything the operator typed.
  return new RekeyError('ERR_CONFIG', `the PostgreSQL store ${location.replace(/\?.*$/s, '')} sets a parameter the server refuses at connect: ${reason} "${name}"; fix or remove "-c ${name}=..." in ?options= of the URL`)
}

/**
 * ERR_CONFIG for a missing privilege (42501) while creating the store: on the database (to
 * create the configured schema) or on the schema (to create the tables). `undefined` for any other error.
 */
export function missingPrivilege(err: unknown, target: StoreSchema | { readonly database: string, readonly role: string }): RekeyError | undefined {
  if (codeOf(err) !== '42501') return undefined
  if ('database' in target) {
    return new RekeyError('ERR_CONFIG', `the PostgreSQL role ${target.role} may not create the store's schema: it lacks the CREATE privilege on database ${target.database} (GRANT CREATE ON DATABASE ${target.database} TO ${target.role}), or create the schema beforehand`)
  }
  return new RekeyError('ERR_CONFIG', `the PostgreSQL role ${target.role} may not create rekey's tables in schema ${target.schema}: it lacks the CREATE privilege on it (GRANT CREATE ON SCHEMA ${target.schema} TO ${target.role}), or name one it may create in with ${SCHEMA_OPTION}`)
}
