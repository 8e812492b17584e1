/**
 * PostgreSQL errors as the caller sees them. Every error that means "the database is not
 * serving you" becomes ERR_STORE_UNAVAILABLE (HTTP 503 with Retry-After): the socket-level
 * failures, SQLSTATE classes 08 (connection exception), 53 (insufficient resources: too many
 * connections, out of memory, disk full), 57P (operator intervention: shutdown, terminated
 * backend, database dropped, idle timeout) and 28 (authentication), 3D000 (the database does
 * not exist), 55000 when the database is not accepting connections (ALLOW_CONNECTIONS false),
 * and the pool's own messages for dead connections. Unique violations and serialization
 * failures become ERR_CONFLICT. Anything else is a bug and passes unchanged.
 */
import { isRekeyError } from '../../core/errors.ts'
import { conflict, uniqueConflict, unavailable } from '../errors.ts'

/** Socket-level error codes of a server that cannot be reached. */
const NETWORK_CODES = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'ECONNABORTED', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH',
  'ENOTFOUND', 'EAI_AGAIN', 'EPIPE', 'ENOENT', // ENOENT: a Unix socket path that is not there
])

/** SQLSTATEs of a server that cannot serve now, besides the classes in {@link UNAVAILABLE_CLASSES}. */
const UNAVAILABLE_SQLSTATES = new Set([
  '57014', // query_canceled (statement_timeout)
  '55P03', // lock_not_available
  '3D000', // invalid_catalog_name: the database does not exist (dropped, or a typo in the URL)
])

/**
 * SQLSTATE classes that always mean "not serving you": 08 connection exception, 53
 * insufficient resources (53300 too many connections, 53400 a configured limit), 57P operator
 * intervention (57P01 admin shutdown and pg_terminate_backend, 57P02 crash, 57P03 cannot
 * connect now, 57P04 database dropped, 57P05 idle session timeout), 28 authentication.
 */
const UNAVAILABLE_CLASSES = ['08', '53', '57P', '28']

/** 55000 (object_not_in_prerequisite_state) is broad; only this message of it means "not serving". */
const NOT_ACCEPTING = /is not (currently )?accepting connections/

/** Words for the codes an operator is most likely to meet. */
const REASONS: Readonly<Record<string, string>> = {
  ECONNREFUSED: 'connection refused',
  ETIMEDOUT: 'connection timed out',
  ENOTFOUND: 'host not found',
  '57P01': 'the server terminated the connection',
  '57P04': 'the database was dropped',
  '57014': 'statement timeout',
  '53300': 'too many connections',
  '28P01': 'authentication failed',
  '28000': 'authentication failed',
  '3D000': 'the database does not exist',
  '55000': 'the database is not accepting connections',
}

/** Messages pg and pg-pool use for a dead or unusable connection (they carry no code). */
const UNAVAILABLE_MESSAGES = [
  'Connection terminated',
  'timeout exceeded when trying to connect',
  'Client has encountered a connection error',
  'Client was closed and is not queryable',
  'Cannot use a pool after calling end on the pool',
  'Query read timeout',
]

function errorCode(err: Error): string | undefined {
  const code = (err as { code?: unknown }).code
  if (typeof code === 'string') return code
  // Node's happy-eyeballs connect reports an AggregateError of per-address failures.
  if (err instanceof AggregateError) {
    for (const inner of err.errors as unknown[]) {
      const innerCode = (inner as { code?: unknown } | null)?.code
      if (typeof innerCode === 'string') return innerCode
    }
  }
  return undefined
}

/** True if the error means the server or connection is unusable, not that the query was wrong. */
export function isConnectionError(err: unknown): boolean {
  if (!(err instanceof Error)) return false
  const code = errorCode(err)
  if (code !== undefined) {
    if (NETWORK_CODES.has(code) || UNAVAILABLE_SQLSTATES.has(code) || UNAVAILABLE_CLASSES.some((c) => code.startsWith(c))) return true
    if (code === '55000' && NOT_ACCEPTING.test(err.message)) return true
  }
  return UNAVAILABLE_MESSAGES.some((m) => err.message.includes(m))
}

/** Maps a driver error; anything unrecognized (a bug) is returned unchanged. */
export function mapPgError(err: unknown, location: string): unknown {
  if (isRekeyError(err) || !(err instanceof Error)) return err
  if (isConnectionError(err)) {
    const code = errorCode(err)
    const reason = code === undefined ? err.message : `${REASONS[code] ?? 'error'} ${code}`
    return unavailable(`the PostgreSQL store ${location} is unavailable (${reason})`, err)
  }
  const code = errorCode(err)
  if (code === '23505') {
    const { table, detail } = err as { table?: string, detail?: string }
    // detail reads "Key (email)=(...) already exists": keep the column names, drop the values.
    const columns = /^Key \(([^)]*)\)=/.exec(detail ?? '')?.[1]?.split(',').map((c) => c.trim()) ?? ['key']
    return uniqueConflict(table ?? 'unknown', columns)
  }
  if (code === '40001' || code === '40P01') return conflict('a concurrent change got in the way; retry')
  return err
}
