/**
 * The two ways a store call fails that a caller can act on, and how locations are shown.
 *
 * Both dialects turn their driver errors into a {@link RekeyError}:
 * - `ERR_CONFLICT`: someone else changed the same state first (a taken email, a moved key-set
 *   version, a key not in the expected state); nothing was written.
 * - `ERR_STORE_UNAVAILABLE`: the database did not answer (refused, dropped or terminated
 *   connection, pool timeout, a lock held past the busy timeout); retrying later may work.
 *
 * Anything else is a bug and is rethrown unchanged. Messages never carry row values, token
 * hashes or passwords.
 */
import { isPostgresLocation } from './location.ts'
import { RekeyError } from '../core/errors.ts'

/** A conflict: another writer won, nothing was written. Carries no driver cause (it may echo row values). */
export function conflict(message: string): RekeyError {
  return new RekeyError('ERR_CONFLICT', message)
}

/** Friendlier words for the unique constraints a caller can hit, by `table.columns`. */
const UNIQUE_MESSAGES: Readonly<Record<string, string>> = {
  'users.email': 'a user with this email already exists',
  'users.id': 'a user with this id already exists',
  'keys.kid': 'a key with this kid already exists',
  'keys.purpose': 'a purpose can have only one current key',
  'session_families.id': 'a session with this id already exists',
  'refresh_tokens.token_hash': 'this refresh token already exists',
}

/** A unique-constraint violation on `table` over `columns` (names only, never values). */
export function uniqueConflict(table: string, columns: readonly string[]): RekeyError {
  const key = `${table}.${columns.join(',')}`
  return conflict(UNIQUE_MESSAGES[key] ?? `a ${table} row with the same ${columns.join(', ')} already exists`)
}

/** The store did not answer. `cause` is the driver error, kept for logs; it never holds a password. */
export function unavailable(message: string, cause?: unknown): RekeyError {
  return new RekeyError('ERR_STORE_UNAVAILABLE', message, cause === undefined ? {} : { cause })
}

/** True for a RekeyError with the given code (also across copies of the package). */
export function hasCode(err: unknown, code: 'ERR_CONFLICT' | 'ERR_STORE_UNAVAILABLE'): boolean {
  return err instanceof Error && err.name === 'RekeyError' && (err as { code?: unknown }).code === code
}

/**
 * A store location safe to print: the password of a PostgreSQL URL becomes `***`
 * (`postgres://user:***@host/db`), and so does a `password=` query parameter.
 * SQLite paths are returned unchanged.
 */
export function maskLocation(location: string): string {
  if (!isPostgresLocation(location)) return location
  try {
    const url = new URL(location)
    if (url.password !== '') url.password = '***'
    if (url.searchParams.has('password')) url.searchParams.set('password', '***')
    return url.toString().replace('%2A%2A%2A', '***')
  } catch {
    // Not parseable as a URL: cut everything between the scheme's `user:` and `@`.
    return location.replace(/^(postgres(?:ql)?:\/\/[^:/@]*:)[^@]*@/i, '$1***@').replace(/(password=)[^&\s]*/gi, '$1***')
  }
}
