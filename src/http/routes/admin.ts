/**
 * The admin API, `/api/admin/*`: the managed key operations of the CLI for a user with role
 * `admin` (Bearer access token; 401 without a valid one, 403 for other roles). Each change is
 * audited with the admin's email as operator and the request id.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { ServiceError } from '../../service/errors.ts'
import { SECRET_TARGETS, type Actor, type SecretTarget } from '../../service/lifecycle.ts'
import type { Service } from '../../service/service.ts'
import { bearerToken } from '../bearer.ts'

const secret = { type: 'string', enum: [...SECRET_TARGETS] } as const
const kid = { type: 'string', minLength: 1, maxLength: 128, pattern: '^[\\x21-\\x7e]+$' } as const
const reason = { type: 'string', minLength: 1, maxLength: 500 } as const

const rotateBody = {
  type: 'object', additionalProperties: false,
  properties: { secret, hard: { type: 'boolean' }, timeout: { type: 'integer', minimum: 0, maximum: 300 } },
} as const
const finalizeBody = { type: 'object', additionalProperties: false, properties: { secret, force: { type: 'boolean' } } } as const
const rollbackBody = { type: 'object', additionalProperties: false, properties: { secret } } as const
const revokeBody = { type: 'object', required: ['kid'], additionalProperties: false, properties: { kid, reason } } as const
const emergencyBody = { type: 'object', required: ['reason'], additionalProperties: false, properties: { secret, reason } } as const
const auditQuery = {
  type: 'object', additionalProperties: false,
  properties: { since: { type: 'string', minLength: 1, maxLength: 40 }, limit: { type: 'string', pattern: '^[0-9]{1,6}$' } },
} as const

/** `since` as an ISO date or epoch milliseconds. */
function parseSince(value: string | undefined): number | undefined {
  if (value === undefined) return undefined
  const ms = /^\d+$/.test(value) ? Number(value) : Date.parse(value)
  if (!Number.isFinite(ms)) throw new ServiceError('validation_failed', 'since must be an ISO-8601 date or epoch milliseconds')
  return ms
}

/** The `/api/admin/*` routes. */
export function adminRoutes(app: FastifyInstance, service: Service): void {
  const { lifecycle } = service
  const actors = new WeakMap<FastifyRequest, Actor>()
  const actor = (request: FastifyRequest): Actor => {
    const found = actors.get(request)
    // The hook below runs first on every route of this scope; reaching here without it is a bug.
    if (found === undefined) throw new ServiceError('unauthorized')
    return found
  }

  void app.register(async (scope) => {
    scope.addHook('preValidation', async (request) => {
      // POST routes whose fields are all optional accept an absent body as {}.
      if (request.method === 'POST' && (request.body === undefined || request.body === null)) request.body = {}
    })
    scope.addHook('preHandler', async (request, reply) => {
      const { user } = await service.auth.authenticate(bearerToken(request, reply))
      if (user.role !== 'admin') throw new ServiceError('forbidden')
      actors.set(request, { operator: user.email, requestId: request.id })
    })

    scope.get('/api/admin/keys', async () => lifecycle.keys())
    scope.get('/api/admin/status', async () => lifecycle.status())

    scope.post<{ Body: { secret?: SecretTarget, hard?: boolean, timeout?: number } }>('/api/admin/rotate', { schema: { body: rotateBody } }, async (request, reply) => {
      const { secret: target, hard, timeout } = request.body
      const report = await lifecycle.rotate({
        actor: actor(request), hard: hard === true,
        ...(target === undefined ? {} : { secret: target }),
        ...(timeout === undefined ? {} : { timeoutMs: timeout * 1000 }),
      })
      // 202: staged, not every instance has it yet; a second call finishes the rotation.
      return reply.code(report.promoted ? 200 : 202).send(report)
    })

    scope.post<{ Body: { secret?: SecretTarget, force?: boolean } }>('/api/admin/finalize', { schema: { body: finalizeBody } }, async (request) => {
      const { secret: target, force } = request.body
      return lifecycle.finalize({ actor: actor(request), force: force === true, ...(target === undefined ? {} : { secret: target }) })
    })

    scope.post<{ Body: { secret?: SecretTarget } }>('/api/admin/rollback', { schema: { body: rollbackBody } }, async (request) => {
      const { secret: target } = request.body
      return lifecycle.rollback({ actor: actor(request), ...(target === undefined ? {} : { secret: target }) })
    })

    scope.post<{ Body: { kid: string, reason?: string } }>('/api/admin/revoke', { schema: { body: revokeBody } }, async (request) => {
      const { kid: id, reason: why } = request.body
      return lifecycle.revoke({ actor: actor(request), kid: id, ...(why === undefined ? {} : { reason: why }) })
    })

    scope.post<{ Body: { secret?: SecretTarget, reason: string } }>('/api/admin/emergency', { schema: { body: emergencyBody } }, async (request) => {
      const { secret: target, reason: why } = request.body
      return lifecycle.emergency({ actor: actor(request), reason: why, ...(target === undefined ? {} : { secret: target }) })
    })

    scope.get<{ Querystring: { since?: string, limit?: string } }>('/api/admin/audit', { schema: { querystring: auditQuery } }, async (request) => {
      const since = parseSince(request.query.since)
      const limit = request.query.limit === undefined ? 1000 : Math.min(Number(request.query.limit), 10_000)
      const events = await service.store.listAudit({ ...(since === undefined ? {} : { since }), limit })
      return { events }
    })
  })
}
