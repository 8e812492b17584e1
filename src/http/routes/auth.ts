import type { FastifyInstance, preHandlerHookHandler } from 'fastify'
import { normalizeEmail } from '../../service/auth.ts'
import { ServiceError } from '../../service/errors.ts'
import type { Service } from '../../service/service.ts'
import { bearerToken } from '../bearer.ts'
import { credentialsBody, refreshBody, tokenPairReply, type Credentials, type RefreshRequest } from '../schemas.ts'

/** Rate-limit hooks for login, made by the app from `@fastify/rate-limit`. */
export interface LoginLimits {
  readonly perIp: preHandlerHookHandler
  readonly perAccount: preHandlerHookHandler
}

/** The `/api/auth/*` routes. */
export function authRoutes(app: FastifyInstance, service: Service, limits: LoginLimits): void {
  const { auth } = service

  app.post<{ Body: Credentials }>('/api/auth/register', { schema: { body: credentialsBody } }, async (request, reply) => {
    const user = await auth.register(request.body.email, request.body.password)
    return reply.code(201).send(user)
  })

  app.post<{ Body: Credentials }>('/api/auth/login', {
    schema: { body: credentialsBody, response: { 200: tokenPairReply } },
    preHandler: [limits.perIp, limits.perAccount],
  }, async (request) => auth.login(request.body.email, request.body.password))

  app.post<{ Body: RefreshRequest }>('/api/auth/refresh', {
    schema: { body: refreshBody, response: { 200: tokenPairReply } },
  }, async (request) => auth.refresh(request.body.refreshToken))

  app.post<{ Body: RefreshRequest }>('/api/auth/logout', { schema: { body: refreshBody } }, async (request, reply) => {
    await auth.logout(request.body.refreshToken)
    return reply.code(204).send()
  })

  app.post('/api/auth/logout-all', async (request, reply) => {
    // No body is expected; anything but nothing or {} is refused like an unknown field.
    const body = request.body
    if (body !== undefined && body !== null && !(typeof body === 'object' && !Array.isArray(body) && Object.keys(body).length === 0)) {
      throw new ServiceError('validation_failed', 'body must be empty')
    }
    const { identity } = await auth.authenticate(bearerToken(request, reply))
    await auth.logoutAll(identity.userId)
    return reply.code(204).send()
  })

  app.get('/api/auth/me', async (request, reply) => {
    const { user } = await auth.authenticate(bearerToken(request, reply))
    return { id: user.id, email: user.email, role: user.role }
  })
}

/** The per-account key of a login: the normalized email (or the raw text, bounded). */
export function accountKey(body: unknown): string {
  const email = (body as { email?: unknown } | null)?.email
  if (typeof email !== 'string') return 'account:'
  return `account:${normalizeEmail(email) ?? email.slice(0, 254).toLowerCase()}`
}
