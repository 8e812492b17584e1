import type { FastifyInstance, FastifyReply, preHandlerHookHandler } from 'fastify'
import { ServiceError } from '../../service/errors.ts'
import type { Service } from '../../service/service.ts'
import { bearerToken } from '../bearer.ts'
import {
  credentialsBody, passwordChangeBody, refreshBody, tokenPairReply,
  type Credentials, type PasswordChange, type RefreshRequest,
} from '../schemas.ts'

/**
 * Rate-limit hooks for login, made by the app from `@fastify/rate-limit`. Failed logins per
 * (account, address) are the auth service's backoff (`checkCredentials`), not a hook.
 */
export interface LoginLimits {
  readonly perIp: preHandlerHookHandler
}

/** Token answers must not be kept by browsers or proxies (RFC 6749 §5.1). */
function noStore(reply: FastifyReply): void {
  void reply.header('cache-control', 'no-store').header('pragma', 'no-cache')
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
    preHandler: [limits.perIp],
  }, async (request, reply) => {
    noStore(reply)
    return auth.login(request.body.email, request.body.password, request.ip, request.id)
  })

  app.post<{ Body: RefreshRequest }>('/api/auth/refresh', {
    schema: { body: refreshBody, response: { 200: tokenPairReply } },
  }, async (request, reply) => {
    noStore(reply)
    return auth.refresh(request.body.refreshToken)
  })

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

  // Bearer: an access token, or the passwordChangeToken a login answered with 403 password_change_required.
  app.post<{ Body: PasswordChange }>('/api/auth/password', {
    schema: { body: passwordChangeBody },
    preHandler: [limits.perIp],
  }, async (request, reply) => {
    noStore(reply)
    await auth.changePassword(bearerToken(request, reply), request.body.currentPassword, request.body.newPassword, request.ip, request.id)
    return reply.code(204).send()
  })
}
