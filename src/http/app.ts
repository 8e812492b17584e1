/**
 * The Fastify app of `rekey serve`: limits, schemas, error mapping and the routes of contract
 * section 4, the admin API and its dashboard included.
 */
import { randomUUID } from 'node:crypto'
import rateLimit, { type RateLimitOptions } from '@fastify/rate-limit'
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type preHandlerHookHandler } from 'fastify'
import type { Logger } from 'pino'
import type { Service } from '../service/service.ts'
import { dashboardRoutes } from './dashboard/routes.ts'
import { DashboardSessions } from './dashboard/session.ts'
import { handleError, handleNotFound } from './errors.ts'
import { adminRoutes } from './routes/admin.ts'
import { accountKey, authRoutes } from './routes/auth.ts'
import { healthRoutes } from './routes/health.ts'
import { publicRoutes } from './routes/public.ts'

/** Largest request body accepted, bytes. */
export const BODY_LIMIT = 64 * 1024

function rateLimitError(_request: unknown, context: { after: string, statusCode: number }): Error {
  const err = new Error(`Too many requests; retry in ${context.after}`) as Error & { statusCode: number }
  err.statusCode = context.statusCode
  return err
}

/**
 * One independent limit as a preHandler hook. @fastify/rate-limit applies only the first of
 * its hooks per request, so each limit gets its own registration (own counters, own marker),
 * in an encapsulated scope so its decorator does not clash with the others.
 */
async function limiter(app: FastifyInstance, options: RateLimitOptions): Promise<preHandlerHookHandler> {
  let hook: preHandlerHookHandler | undefined
  await app.register(async (scope) => {
    await scope.register(rateLimit, { global: false, hook: 'preHandler', errorResponseBuilder: rateLimitError })
    hook = scope.rateLimit(options)
  })
  if (hook === undefined) throw new Error('the rate limiter did not register')
  return hook
}

/** Builds the app around a started service. The caller listens (or injects) and closes it. */
export async function buildApp(service: Service, log: Logger, options: { draining?: () => boolean } = {}): Promise<FastifyInstance> {
  const { config } = service
  const app = Fastify({
    loggerInstance: log as FastifyBaseLogger,
    bodyLimit: BODY_LIMIT,
    // Fastify accepts a hop count too; its types only list the other forms.
    trustProxy: config.trustProxy as boolean | string,
    genReqId: () => randomUUID(),
    // A child logger per request costs microseconds; below info level nothing per request is
    // logged, so requests share the app logger and the error handler names the request id.
    childLoggerFactory: (logger, bindings, options) => log.isLevelEnabled('info') ? logger.child(bindings, options) : logger,
    logController: new LogController({ disableRequestLogging: !log.isLevelEnabled('info') }),
    return503OnClosing: true,
    forceCloseConnections: 'idle',
    // Unknown fields are refused, not silently stripped; types are not coerced.
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, allErrors: false } },
  })
  // All bodies are JSON: Fastify's default text/plain parser would let strings reach the schemas.
  app.removeContentTypeParser('text/plain')
  app.setErrorHandler(handleError)
  const draining = options.draining
  if (draining !== undefined) {
    // While draining, each answer ends its keep-alive connection, so closing does not wait on idle clients.
    app.addHook('onSend', (_request, reply, payload, done) => {
      if (draining()) void reply.header('connection', 'close')
      done(null, payload)
    })
  }
  app.setNotFoundHandler(handleNotFound)
  // Per route pattern, so the label set stays bounded whatever paths clients ask for.
  app.addHook('onResponse', (request, reply, done) => {
    const route = request.routeOptions.url ?? 'unmatched'
    service.metrics.httpDuration.observe({ method: request.method, route, status_code: String(reply.statusCode) }, reply.elapsedTime / 1000)
    done()
  })

  const windowMs = config.rateLimit.window * 1000
  const authLimit = await limiter(app, { max: config.rateLimit.max, timeWindow: windowMs })
  const limits = {
    perIp: await limiter(app, { max: config.rateLimit.loginPerIp, timeWindow: windowMs }),
    perAccount: await limiter(app, {
      max: config.rateLimit.loginPerAccount,
      timeWindow: windowMs,
      keyGenerator: (request) => accountKey(request.body),
      // The first refused attempt of a lock writes the audit row (login-lock).
      onExceeded: (request, key) => {
        void service.auth.recordLoginLock(key.replace(/^account:/, ''), windowMs, request.id)
      },
    }),
  }
  // Every auth route that takes credentials or tokens to the store shares one per-IP budget,
  // on top of the login limits. /api/auth/me is left out: it is answered from memory, its
  // token cannot be guessed, and clients call it on every page.
  app.addHook('onRoute', (route) => {
    if (route.url.startsWith('/api/auth/') && route.url !== '/api/auth/me') {
      const own = route.preHandler === undefined ? [] : Array.isArray(route.preHandler) ? route.preHandler : [route.preHandler]
      route.preHandler = [authLimit, ...own]
    }
  })

  const { masterKey } = service
  const sessions = new DashboardSessions({ masterKey, revocations: service.revocations })

  healthRoutes(app, service)
  authRoutes(app, service, limits)
  publicRoutes(app, service)
  adminRoutes(app, service, { masterKey, sessions })
  await dashboardRoutes(app, service, { sessions, passwords: service.passwords, limits })
  await app.ready()
  return app
}
