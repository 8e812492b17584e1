/**
 * The admin dashboard at `/admin`: the page and its static files, sign-in, the session (with
 * its CSRF token) and sign-out. Everything the page shows or does goes through the admin API
 * (`/api/admin/*`), which accepts this session's cookie besides a Bearer token.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { ServiceError } from '../../service/errors.ts'
import { PASSWORD_MAX } from '../../service/auth/passwords.ts'
import type { PasswordHasher } from '../../service/auth/passwords.ts'
import type { Service } from '../../service/service.ts'
import type { LoginLimits } from '../routes/auth.ts'
import { loadAssets, type Asset, type AssetName } from './assets.ts'
import type { DashboardSession, DashboardSessions } from './session.ts'

/**
 * The page's policy: scripts, styles and requests from this origin only (so no inline script
 * runs, injected or not), never framed, no plugins, forms post here only.
 */
export const DASHBOARD_CSP = [
  "default-src 'self'", "script-src 'self'", "style-src 'self'", "img-src 'self' data:", "connect-src 'self'",
  "object-src 'none'", "base-uri 'none'", "form-action 'self'", "frame-ancestors 'none'",
].join('; ')

const signInBody = {
  type: 'object', required: ['email', 'password'], additionalProperties: false,
  properties: { email: { type: 'string', minLength: 1, maxLength: 254 }, password: { type: 'string', minLength: 1, maxLength: PASSWORD_MAX } },
} as const

/** What {@link dashboardRoutes} needs besides the service. */
export interface DashboardOptions {
  readonly sessions: DashboardSessions
  readonly passwords: PasswordHasher
  /** The login rate limits: sign-in shares them. */
  readonly limits: LoginLimits
  /** Default: the files of `dashboard/`. */
  readonly assets?: ReadonlyMap<AssetName, Asset>
}

function sessionReply(session: DashboardSession): { email: string, csrf: string, expiresAt: string } {
  return { email: session.user.email, csrf: session.csrf, expiresAt: new Date(session.expiresAt * 1000).toISOString() }
}

/** The `/admin` routes. */
export async function dashboardRoutes(app: FastifyInstance, service: Service, options: DashboardOptions): Promise<void> {
  const { sessions, passwords, limits } = options
  let assets = options.assets
  if (assets === undefined) {
    try {
      assets = await loadAssets()
    } catch (err) {
      // The auth service runs without its dashboard rather than not at all.
      app.log.warn({ err: { message: (err as Error).message } }, 'the dashboard files are missing: /admin answers 404')
      assets = new Map()
    }
  }
  const files = assets
  // The dummy hash of unknown-user sign-ins, made now so the first one takes no longer than the rest.
  await passwords.warm()

  const serve = (name: AssetName, request: FastifyRequest, reply: FastifyReply): FastifyReply => {
    const asset = files.get(name)
    if (asset === undefined) throw new ServiceError('not_found', 'The dashboard files are not installed')
    void reply.header('etag', asset.etag).header('cache-control', name === 'index.html' ? 'no-store' : 'no-cache')
    if (request.headers['if-none-match'] === asset.etag) return reply.code(304).send()
    return reply.type(asset.type).send(asset.body)
  }

  await app.register(async (scope) => {
    scope.addHook('onRequest', async (_request, reply) => {
      void reply
        .header('content-security-policy', DASHBOARD_CSP)
        .header('x-frame-options', 'DENY')
        .header('x-content-type-options', 'nosniff')
        .header('referrer-policy', 'no-referrer')
        .header('cross-origin-opener-policy', 'same-origin')
        .header('cache-control', 'no-store')
    })

    scope.get('/admin', async (request, reply) => serve('index.html', request, reply))
    scope.get('/admin/', async (request, reply) => serve('index.html', request, reply))
    scope.get('/admin/app.js', async (request, reply) => serve('app.js', request, reply))
    scope.get('/admin/app.css', async (request, reply) => serve('app.css', request, reply))

    scope.get('/admin/api/session', async (request) => sessionReply(await sessions.authenticate(request, { mutating: false })))

    scope.post<{ Body: { email: string, password: string } }>('/admin/api/sign-in', {
      schema: { body: signInBody },
      preHandler: [limits.perIp],
    }, async (request, reply) => {
      sessions.checkOrigin(request)
      // The login's own check, backoff per (account, address) included.
      const row = await service.auth.checkCredentials(request.body.email, request.body.password, request.ip, request.id)
      // A non-admin gets the same 401 as a wrong password.
      if (row.role !== 'admin') throw new ServiceError('invalid_credentials')
      if (row.mustChangePassword) throw new ServiceError('password_change_required', 'This account must set a new password first (POST /api/auth/password after login)')
      const user = { id: row.id, email: row.email, role: row.role, tokenVersion: row.tokenVersion }
      service.revocations.remember(user)
      const sid = await service.auth.startSession(row.id, sessions.ttlSeconds)
      const session = sessions.start(user, sid, request, reply)
      request.log.info({ userId: row.id }, 'dashboard sign-in')
      return sessionReply(session)
    })

    scope.post('/admin/api/sign-out', async (request, reply) => {
      // A live session needs its CSRF token to end; a dead or absent one is simply cleared.
      let live: DashboardSession | null = null
      try {
        live = await sessions.authenticate(request, { mutating: false })
      } catch (err) {
        if (!(err instanceof ServiceError)) throw err
      }
      if (live !== null) {
        sessions.checkCsrf(request, live.csrf)
        // Ended in the store: a copy of the cookie stops working too, on every instance.
        await service.auth.endSession(live.sid, 'sign-out')
      }
      sessions.end(request, reply)
      return reply.code(204).send()
    })
  })
}
