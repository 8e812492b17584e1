/**
 * PostgreSQL errors as the caller sees them. Connection-level failures (refused, reset,
 * terminated backend, pool connect timeout, server shutting down) become
 * ERR_STORE_UNAVAILABLE; unique violations and serialization failures become ERR_CONFLICT.
 */
import { isRekeyError } from '../../core/errors.ts'
import { conflict, uniqueConflict, unavailable } from '../errors.ts'

/** Socket-level error codes of a server that cannot be reached. */
const NETWORK_CODES = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'ECONNABORTED', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH',
  'ENOTFOUND', 'EAI_AGAIN', 'EPIPE', 'ENOENT', // ENOENT: a Unix socket path that is not there
])

/** SQLSTATEs of a server that cannot serve now (besides class 08, connection exceptions). */
const UNAVAILABLE_SQLSTATES = new Set([
  '57P01', // admin_shutdown (also pg_terminate_backend)
  '57P02', // crash_shutdown
  '57P03', // cannot_connect_now
  '57014', // query_canceled (statement_timeout)
  '55P03', // lock_not_available
  '53300', // too_many_connections
  '53400', // configuration_limit_exceeded
  '28000', // invalid_authorization_specification
  '28P01', // invalid_password
  '3D000', // invalid_catalog_name: the database does not exist
])

/** Words for the codes an operator is most likely to meet. */
const REASONS: Readonly<Record<string, string>> = {
  ECONNREFUSED: 'connection refused',
  ETIMEDOUT: 'connection timed out',
  ENOTFOUND: 'host not found',
  '57P01': 'the server terminated the connection',
  '57014': 'statement timeout',
  '53300': 'too many connections',
  '28P01': 'authentication failed',
  '28000': 'authentication failed',
  '3D000': 'the database does not exist',
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
  if (code !== undefined && (NETWORK_CODES.has(code) || UNAVAILABLE_SQLSTATES.has(code) || code.startsWith('08'))) return true
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
