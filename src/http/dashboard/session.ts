/**
 * The dashboard's sign-in session: a cookie holding `{ uid, sid, ver, iat, exp, csrf }` sealed
 * with AES-256-GCM under a key derived from the master key, so any instance opens it. `sid`
 * names a session in the store: sign-out ends it there, so a copied cookie stops working at
 * once on every instance. Each request goes through the service's one session check (the
 * session, the user, a logout-all's token version, an emergency's global not-before).
 *
 * State-changing requests need, besides the cookie, the session's CSRF token in the
 * `x-csrf-token` header and an `Origin` naming this host (SameSite=Strict is the third layer).
 */
import { randomBytes } from 'node:crypto'
import { secretEquals } from '../../core/constant-time.ts'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { isRekeyError } from '../../core/errors.ts'
import { open, seal } from '../../core/seal.ts'
import { checkSession } from '../../service/auth/session-check.ts'
import { ServiceError } from '../../service/errors.ts'
import type { CachedUser, RevocationCache } from '../../service/auth/revocations.ts'

/** The cookie's name. */
export const SESSION_COOKIE = 'rekey_admin'
/** The header carrying the CSRF token on every state-changing request. */
export const CSRF_HEADER = 'x-csrf-token'
/** Default session lifetime, seconds: 8 hours. */
export const SESSION_TTL_SECONDS = 8 * 3600

// Binds the sealed value to this use: a value sealed elsewhere under the master key does not open here.
const AAD = 'rekey/dashboard-session'
/** A sealed session is far below this; longer cookies are not even decrypted. */
const MAX_COOKIE_CHARS = 1024

/** What the cookie holds. Times in epoch seconds. */
interface SessionClaims {
  readonly uid: string
  /** The session in the store (ended by sign-out). */
  readonly sid: string
  readonly ver: number
  readonly iat: number
  readonly exp: number
  readonly csrf: string
}

/** A signed-in dashboard user. */
export interface DashboardSession {
  readonly user: CachedUser
  readonly sid: string
  readonly csrf: string
  /** Epoch seconds. */
  readonly expiresAt: number
}

/** The value of one cookie in a `Cookie` header, or undefined. */
export function cookieValue(header: string | undefined, name: string): string | undefined {
  if (header === undefined) return undefined
  for (const part of header.split(';')) {
    const eq = part.indexOf('=')
    if (eq !== -1 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim()
  }
  return undefined
}

const signIn = (message: string): ServiceError => new ServiceError('unauthorized', message)

export class DashboardSessions {
  readonly #key: Buffer
  readonly #revocations: RevocationCache
  readonly #ttl: number
  readonly #now: () => number

  /** `key`: the cookie-sealing key the service derives from the master key (`Service.dashboardKey`). */
  constructor(options: { key: Uint8Array, revocations: RevocationCache, ttlSeconds?: number, now?: () => number }) {
    this.#key = Buffer.from(options.key)
    this.#revocations = options.revocations
    this.#ttl = options.ttlSeconds ?? SESSION_TTL_SECONDS
    this.#now = options.now ?? Date.now
  }

  /** True when the request carries a session cookie (valid or not). */
  present(request: FastifyRequest): boolean {
    return cookieValue(request.headers.cookie, SESSION_COOKIE) !== undefined
  }

  /** The lifetime of a session, seconds. */
  get ttlSeconds(): number {
    return this.#ttl
  }

  /** Starts session `sid` (created in the store) for `user` (an admin whose password was checked): sets the cookie. */
  start(user: CachedUser, sid: string, request: FastifyRequest, reply: FastifyReply): DashboardSession {
    const iat = Math.floor(this.#now() / 1000)
    const claims: SessionClaims = { uid: user.id, sid, ver: user.tokenVersion, iat, exp: iat + this.#ttl, csrf: randomBytes(32).toString('base64url') }
    const value = seal(this.#key, JSON.stringify(claims), AAD)
    void reply.header('set-cookie', this.#cookie(request, value, this.#ttl))
    return { user, sid, csrf: claims.csrf, expiresAt: claims.exp }
  }

  /** Clears the cookie. */
  end(request: FastifyRequest, reply: FastifyReply): void {
    void reply.header('set-cookie', this.#cookie(request, '', 0))
  }

  #cookie(request: FastifyRequest, value: string, maxAge: number): string {
    // Secure whenever the request came over TLS (directly, or per X-Forwarded-Proto from a trusted proxy).
    const secure = request.protocol === 'https' ? '; Secure' : ''
    return `${SESSION_COOKIE}=${value}; Path=/; Max-Age=${maxAge}; HttpOnly; SameSite=Strict${secure}`
  }

  /**
   * The session of the request's cookie, its user re-read through the revocation cache.
   * 401 (`unauthorized`) without a valid, unexpired, unrevoked session; 403 (`forbidden`)
   * when the user is no longer an admin, or, with `mutating`, when the CSRF checks fail.
   */
  async authenticate(request: FastifyRequest, options: { mutating: boolean }): Promise<DashboardSession> {
    const raw = cookieValue(request.headers.cookie, SESSION_COOKIE)
    if (raw === undefined || raw === '') throw signIn('Sign in to the dashboard')
    const claims = this.#open(raw)
    if (claims === null) throw signIn('The dashboard session is invalid; sign in again')
    if (claims.exp <= Math.floor(this.#now() / 1000)) throw signIn('The dashboard session has expired; sign in again')
    // Before the user lookup: a forged cross-site request learns nothing, not even whether the session is live.
    if (options.mutating) this.checkCsrf(request, claims.csrf)
    let user: CachedUser
    try {
      user = await checkSession(this.#revocations, { userId: claims.uid, iat: claims.iat, ver: claims.ver, sid: claims.sid })
    } catch (err) {
      if (!isRekeyError(err)) throw err
      throw signIn(`${err.message}; sign in again`)
    }
    if (user.role !== 'admin') throw new ServiceError('forbidden')
    return { user, sid: claims.sid, csrf: claims.csrf, expiresAt: claims.exp }
  }

  /** 403 unless the request names this origin and carries the session's CSRF token. */
  checkCsrf(request: FastifyRequest, expected: string): void {
    this.checkOrigin(request)
    const given = request.headers[CSRF_HEADER]
    if (typeof given !== 'string' || given === '' || !secretEquals(given, expected)) {
      throw new ServiceError('forbidden', 'The CSRF token is missing or wrong; reload the dashboard')
    }
  }

  /** 403 unless the `Origin` header is this service's own origin (browsers send it on every POST). */
  checkOrigin(request: FastifyRequest): void {
    const origin = request.headers.origin
    if (typeof origin !== 'string' || origin !== `${request.protocol}://${request.host}`) {
      throw new ServiceError('forbidden', 'Cross-origin request refused')
    }
  }

  #open(raw: string): SessionClaims | null {
    if (raw.length > MAX_COOKIE_CHARS) return null
    let parsed: unknown
    try {
      parsed = JSON.parse(open(this.#key, raw, AAD).toString('utf8'))
    } catch (err) {
      if (isRekeyError(err) || err instanceof SyntaxError) return null
      throw err
    }
    const c = parsed as Partial<SessionClaims> | null
    if (c === null || typeof c !== 'object' || typeof c.uid !== 'string' || typeof c.sid !== 'string' || typeof c.csrf !== 'string'
      || !Number.isSafeInteger(c.ver) || !Number.isSafeInteger(c.iat) || !Number.isSafeInteger(c.exp)) return null
    return c as SessionClaims
  }
}
