/**
 * What a store location names: a `postgres://` or `postgresql://` URL is PostgreSQL, anything
 * else that is not a URL is a SQLite file path. A location that looks like a URL of another
 * scheme (`postgress://`, `mysql://`, `sqlite://`) is a mistake, never a path: opening it as a
 * file would create a directory named after it and give every instance its own store.
 */

const POSTGRES_URL = /^postgres(ql)?:\/\//i
// A scheme of two or more letters (one letter is a Windows drive) followed by ':'.
const URL_LIKE = /^([a-z][a-z0-9+.-]+):/i

/** True for a PostgreSQL store location (`postgres://` or `postgresql://`). */
export function isPostgresLocation(location: string): boolean {
  return POSTGRES_URL.test(location)
}

/**
 * The query parameters of a store URL that reach the connection: the ones `pg` (through
 * pg-connection-string) reads. Any other is refused: `pg` would drop it silently, so a
 * `?search_path=x` or `?schema=x` would leave the tables in the default schema.
 */
export const POSTGRES_URL_PARAMETERS: readonly string[] = Object.freeze([
  'host', 'port', 'user', 'password', 'database', 'db', 'encoding', 'options', 'application_name',
  'fallback_application_name', 'client_encoding', 'ssl', 'sslmode', 'sslcert', 'sslkey', 'sslrootcert',
  'sslnegotiation', 'uselibpqcompat', 'replication', 'binary', 'statement_timeout', 'lock_timeout',
  'idle_in_transaction_session_timeout', 'query_timeout',
])

const SCHEMA_HINT = 'name the schema with ?options=-c%20search_path%3DNAME'

/** Why a PostgreSQL URL's query is refused (names only, never a value); `undefined` when every parameter is used. */
function postgresParameterProblem(location: string): string | undefined {
  const query = /\?([^#]*)/.exec(location)?.[1]
  if (query === undefined || query === '') return undefined
  const unknown = [...new Set(new URLSearchParams(query).keys())].filter((name) => !POSTGRES_URL_PARAMETERS.includes(name))
  if (unknown.length === 0) return undefined
  const named = unknown.map((name) => `"${name.slice(0, 40)}"`).join(', ')
  const schema = unknown.some((name) => /schema|search_path|currentschema/i.test(name)) ? ` (to choose a schema, ${SCHEMA_HINT})` : ''
  return `has ${unknown.length === 1 ? 'a parameter' : 'parameters'} rekey and pg do not use: ${named}${schema}; the supported ones are ${POSTGRES_URL_PARAMETERS.join(', ')}`
}

function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i)
  for (let i = 1; i <= a.length; i++) {
    let diagonal = row[0] as number
    row[0] = i
    for (let j = 1; j <= b.length; j++) {
      const above = row[j] as number
      row[j] = Math.min(above + 1, (row[j - 1] as number) + 1, diagonal + (a[i - 1] === b[j - 1] ? 0 : 1))
      diagonal = above
    }
  }
  return row[b.length] as number
}

/**
 * Why `location` is not a store location, with a did-you-mean; `undefined` when it is one.
 * The message shows the scheme only, never the rest (a URL may hold a password).
 */
export function storeLocationProblem(location: string): string | undefined {
  if (location.trim() === '') return 'must not be empty'
  // " postgres://..." would otherwise be a relative file path, and a directory named so.
  if (location !== location.trim() && URL_LIKE.test(location.trim())) return 'has spaces around a URL: remove them'
  if (POSTGRES_URL.test(location)) return postgresParameterProblem(location)
  const match = URL_LIKE.exec(location)
  if (match === null) return undefined
  const scheme = (match[1] as string).toLowerCase()
  const rest = location.slice(match[0].length)
  // SQLite's own URI filenames (`file::memory:`, `file:data.db?mode=ro`) are paths to it.
  if (scheme === 'file' && !rest.startsWith('//')) return undefined
  if (['postgres', 'postgresql'].includes(scheme)) return `"${scheme}:" must be followed by "//": did you mean ${scheme}://${rest.replace(/^\/*/, '')}?`
  if (scheme.startsWith('pg') || scheme.startsWith('postg') || Math.min(distance(scheme, 'postgres'), distance(scheme, 'postgresql')) <= 3) {
    return `"${scheme}://" is not a store scheme: did you mean postgres://? (a store is a postgres:// or postgresql:// URL, or a SQLite file path)`
  }
  if (scheme === 'sqlite' || scheme === 'file') {
    return `"${scheme}:" is not a store scheme: did you mean the file path itself? (a SQLite store is named by its path, e.g. ./.rekey/rekey.db)`
  }
  return `"${scheme}://" is not supported: rekey stores in SQLite (a file path) or PostgreSQL (a postgres:// URL); did you mean postgres://?`
}
