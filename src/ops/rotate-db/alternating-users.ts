/**
 * The alternating-users convention, as pure functions: which login user takes the next turn,
 * and the URLs and names around it. No I/O.
 *
 * The application role (NOLOGIN, holds the grants, e.g. `app`) has two login users that take
 * turns: `app_blue` and `app_green`. A URL whose user ends in `_blue` rotates to `_green` and
 * back. A URL whose user has no suffix (the first run, `app`) rotates to `app_blue`, and that
 * user itself is the application role: finalize then turns it NOLOGIN, leaving it as the
 * group role that owns the objects and holds the grants.
 */
import { maskLocation } from '../../store/errors.ts'

/** Who rotates to whom, and under which application role. */
export interface AlternatingPlan {
  /** The user of the current URL, still logging in until finalize. */
  readonly currentUser: string
  /** The user that gets a new password and becomes the URL's user. */
  readonly nextUser: string
  /** The NOLOGIN role whose membership carries the grants. */
  readonly appRole: string
}

/** PostgreSQL folds unquoted names to lower case; rekey only manages plain lower-case names. */
const ROLE_NAME = /^[a-z_][a-z0-9_$]{0,62}$/

/** True for a role name rekey manages: lower case letters, digits, `_`, `$`, at most 63 bytes. */
export function isPlainRoleName(name: string): boolean {
  return ROLE_NAME.test(name)
}

/**
 * The next turn for `currentUser`: `_blue` ↔ `_green`, or `<user>` → `<user>_blue` on the first
 * run. `appRole` overrides the application role (default: the user without its suffix).
 */
export function planAlternation(currentUser: string, appRole?: string): AlternatingPlan {
  if (!isPlainRoleName(currentUser)) throw new TypeError(`the database user "${currentUser}" is not a plain lower-case role name rekey can manage`)
  const match = /^(.+)_(blue|green)$/.exec(currentUser)
  const base = match?.[1] ?? currentUser
  const nextUser = match === null ? `${currentUser}_blue` : `${base}_${match[2] === 'blue' ? 'green' : 'blue'}`
  if (!isPlainRoleName(nextUser)) throw new TypeError(`the next user name "${nextUser}" would be longer than 63 bytes`)
  const role = appRole ?? base
  if (!isPlainRoleName(role)) throw new TypeError(`the application role "${role}" is not a plain lower-case role name`)
  if (role === nextUser) throw new TypeError('the application role cannot be one of its login users')
  return { currentUser, nextUser, appRole: role }
}

/** Parses a PostgreSQL URL, refusing anything else (without echoing it). */
export function parseDatabaseUrl(text: string, what: string): URL {
  let url: URL
  try {
    url = new URL(text)
  } catch {
    throw new TypeError(`${what} is not a URL`)
  }
  if (url.protocol !== 'postgres:' && url.protocol !== 'postgresql:') throw new TypeError(`${what} must be a postgres:// or postgresql:// URL`)
  if (url.searchParams.has('password') || url.searchParams.has('user')) {
    throw new TypeError(`${what} must carry its user and password before the @, not as query parameters`)
  }
  return url
}

/** The user of a URL, decoded; `TypeError` if it has none. */
export function userOf(url: URL, what: string): string {
  const user = decodeURIComponent(url.username)
  if (user === '') throw new TypeError(`${what} names no user`)
  return user
}

/** The same URL (host, port, database, parameters) with another user and password. */
export function withCredentials(url: URL, user: string, password: string): string {
  const next = new URL(url.href)
  next.username = encodeURIComponent(user)
  next.password = encodeURIComponent(password)
  return next.href
}

/** A URL safe to print: `postgres://user:***@host/db`. */
export function maskUrl(url: string | URL): string {
  return maskLocation(typeof url === 'string' ? url : url.href)
}
