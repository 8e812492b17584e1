/**
 * The Fastify app of `rekey serve`: limits, schemas, error mapping and the routes of contract
 * section 4, the admin API and its dashboard included.
 */
import { randomUUID } from 'node:crypto'
import { createRequire } from 'node:module'
import rateLimit, { type FastifyRateLimitStoreCtor, type RateLimitOptions } from '@fastify/rate-limit'
import type { Redis } from 'ioredis'
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type preHandlerHookHandler } from 'fastify'
import type { Logger } from 'pino'
import type { Service } from '../service/service.ts'
import { dashboardRoutes } from './dashboard/routes.ts'
import { DashboardSessions } from './dashboard/session.ts'
import { handleClientError, handleError, handleNotFound, refuseMissingHost } from './errors.ts'
import { adminRoutes } from './routes/admin.ts'
import { authRoutes } from './routes/auth.ts'
import { healthRoutes } from './routes/health.ts'
import { publicRoutes } from './routes/public.ts'

/** Largest request body accepted, bytes. */
export const BODY_LIMIT = 64 * 1024

function rateLimitError(_request: unknown, context: { after: string, statusCode: number }): Error {
  const err = new Error(`Too many requests; retry in ${context.after}`) as Error & { statusCode: number }
  err.statusCode = context.statusCode
  return err
}

/** The callback-style store @fastify/rate-limit counts in. */
interface RateLimitStore {
  incr(key: string, callback: (err: Error | null, result?: { current: number, ttl: number }) => void, timeWindow: number, max: number): void
  child(routeOptions: unknown): RateLimitStore
}

// @fastify/rate-limit's own Redis store (not re-exported by the package's entry point).
const RedisStore = createRequire(import.meta.url)('@fastify/rate-limit/store/RedisStore.js') as
  new (continueExceeding: boolean, exponentialBackoff: boolean, redis: Redis, key: string) => RateLimitStore

/** Wraps a store so each failure is reported (warning + metric) before the plugin skips the limit (`skipOnError`). */
class ReportingStore implements RateLimitStore {
  readonly #inner: RateLimitStore
  readonly #onError: (err: Error) => void
  constructor(inner: RateLimitStore, onError: (err: Error) => void) {
    this.#inner = inner
    this.#onError = onError
  }
  incr(key: string, callback: (err: Error | null, result?: { current: number, ttl: number }) => void, timeWindow: number, max: number): void {
    this.#inner.incr(key, (err, result) => {
      if (err) this.#onError(err)
      callback(err, result)
    }, timeWindow, max)
  }
  child(routeOptions: unknown): RateLimitStore {
    return new ReportingStore(this.#inner.child(routeOptions), this.#onError)
  }
}

/**
 * One independent limit as a preHandler hook. @fastify/rate-limit applies only the first of
 * its hooks per request, so each limit gets its own registration (own counters, own marker),
 * in an encapsulated scope so its decorator does not clash with the others. With Redis, the
 * counters live there under `name`, shared by every instance; Redis failing skips the limit.
 */
async function limiter(app: FastifyInstance, service: Service, name: string, options: RateLimitOptions): Promise<preHandlerHookHandler> {
  const { redis, prefix } = service.limits
  let hook: preHandlerHookHandler | undefined
  let store: FastifyRateLimitStoreCtor | undefined
  if (redis !== null) {
    const shared: Redis = redis
    store = class {
      constructor(params: { continueExceeding?: boolean, exponentialBackoff?: boolean }) {
        return new ReportingStore(
          new RedisStore(params.continueExceeding === true, params.exponentialBackoff === true, shared, `${prefix}rate-limit:${name}:`),
          (err) => service.limits.storeError(name, err),
        )
      }
    } as unknown as FastifyRateLimitStoreCtor
  }
  await app.register(async (scope) => {
    await scope.register(rateLimit, {
      global: false, hook: 'preHandler', errorResponseBuilder: rateLimitError,
      ...(store === undefined ? {} : { store, skipOnError: true }),
    })
    hook = scope.rateLimit(options)
  })
  if (hook === undefined) throw new Error('the rate limiter did not register')
  return hook
}

/** Builds the app around a started service. The caller listens (or injects) and closes it. */
export async function buildApp(service: Service, log: Logger, options: { draining?: () => boolean } = {}): Promise<FastifyInstance> {
  const { config } = service
  if (config.trustProxy === true) {
    log.warn('REKEY_TRUST_PROXY=true trusts X-Forwarded-For from any client: a client can then choose its own address and evade the per-address limits; set the number of proxy hops (e.g. 1) or the proxies\' addresses instead')
  }
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
    // Answered before any route: in the service's own error shape, not Fastify's default body.
    frameworkErrors: handleError,
    clientErrorHandler: handleClientError,
    // Node's own refusal of a request without Host has an empty body: refuseMissingHost answers it instead.
    http: { requireHostHeader: false },
  })
  app.addHook('onRequest', refuseMissingHost)
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
  const authLimit = await limiter(app, service, 'auth', { max: config.rateLimit.max, timeWindow: windowMs })
  // Failed logins per (account, address) are the auth service's backoff, not a limit here:
  // a per-account limit would let strangers lock a user out.
  const limits = {
    perIp: await limiter(app, service, 'login-ip', { max: config.rateLimit.loginPerIp, timeWindow: windowMs }),
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

  const sessions = new DashboardSessions({ key: service.dashboardKey, revocations: service.revocations })

  healthRoutes(app, service)
  authRoutes(app, service, limits)
  publicRoutes(app, service)
  adminRoutes(app, service, { sessions })
  await dashboardRoutes(app, service, { sessions, passwords: service.passwords, limits })
  await app.ready()
  return app
}
