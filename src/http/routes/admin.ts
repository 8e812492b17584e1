/**
 * The admin API, `/api/admin/*`: the managed key operations of the CLI for a user with role
 * `admin` (Bearer access token, or the dashboard's session cookie with its CSRF token; 401
 * without a valid one, 403 for other roles). Each change is audited with the admin's email as
 * operator and the request id.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { ServiceError } from '../../service/errors.ts'
import { recordRotation } from '../../service/inventory/inventory.ts'
import { SECRET_TARGETS, type Actor, type SecretTarget } from '../../service/keys/rotation.ts'
import type { Service } from '../../service/service.ts'
import { bearerToken } from '../bearer.ts'
import type { DashboardSessions } from '../dashboard/session.ts'

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
// As `rekey record NAME [--method M] [--notes T] [--kind K]`.
const recordBody = {
  type: 'object', required: ['name'], additionalProperties: false,
  properties: {
    name: { type: 'string', pattern: '^[A-Za-z_][A-Za-z0-9_.:-]{0,127}$' },
    method: { type: 'string', minLength: 1, maxLength: 200, pattern: '\\S' },
    notes: { type: 'string', maxLength: 2000 },
    kind: { type: 'string', pattern: '^[a-z][a-z0-9-]{0,31}$' },
  },
} as const

/** What the admin API needs besides the service. */
export interface AdminRouteOptions {
  /** The dashboard's sessions: a request without `Authorization` may authenticate with its cookie. */
  readonly sessions?: DashboardSessions
}

/** `since` as an ISO date or epoch milliseconds. */
function parseSince(value: string | undefined): number | undefined {
  if (value === undefined) return undefined
  const ms = /^\d+$/.test(value) ? Number(value) : Date.parse(value)
  if (!Number.isFinite(ms)) throw new ServiceError('validation_failed', 'since must be an ISO-8601 date or epoch milliseconds')
  return ms
}

/** The `/api/admin/*` routes. */
export function adminRoutes(app: FastifyInstance, service: Service, options: AdminRouteOptions): void {
  const { rotation } = service
  const { sessions } = options
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
    scope.addHook('onRequest', async (_request, reply) => {
      void reply.header('cache-control', 'no-store')
    })
    scope.addHook('preHandler', async (request, reply) => {
      // Bearer first, exactly as without a dashboard; the cookie only when no Authorization is sent.
      const user = sessions !== undefined && request.headers.authorization === undefined && sessions.present(request)
        ? (await sessions.authenticate(request, { mutating: request.method !== 'GET' && request.method !== 'HEAD' })).user
        : (await service.auth.authenticate(bearerToken(request, reply))).user
      if (user.role !== 'admin') throw new ServiceError('forbidden')
      actors.set(request, { operator: user.email, requestId: request.id })
    })

    scope.get('/api/admin/keys', async () => rotation.keys())
    scope.get('/api/admin/status', async () => rotation.status())

    scope.post<{ Body: { secret?: SecretTarget, hard?: boolean, timeout?: number } }>('/api/admin/rotate', { schema: { body: rotateBody } }, async (request, reply) => {
      const { secret: target, hard, timeout } = request.body
      const report = await rotation.rotate({
        actor: actor(request), hard: hard === true,
        // An HTTP request does not wait out a publication delay: 202, and the scheduler (or a second call) promotes.
        noWait: true,
        ...(target === undefined ? {} : { secret: target }),
        ...(timeout === undefined ? {} : { timeoutMs: timeout * 1000 }),
      })
      // 202: staged, not every instance has it yet; a second call finishes the rotation.
      return reply.code(report.promoted ? 200 : 202).send(report)
    })

    scope.post<{ Body: { secret?: SecretTarget, force?: boolean } }>('/api/admin/finalize', { schema: { body: finalizeBody } }, async (request) => {
      const { secret: target, force } = request.body
      return rotation.finalize({ actor: actor(request), force: force === true, ...(target === undefined ? {} : { secret: target }) })
    })

    scope.post<{ Body: { secret?: SecretTarget } }>('/api/admin/rollback', { schema: { body: rollbackBody } }, async (request) => {
      const { secret: target } = request.body
      return rotation.rollback({ actor: actor(request), ...(target === undefined ? {} : { secret: target }) })
    })

    scope.post<{ Body: { kid: string, reason?: string } }>('/api/admin/revoke', { schema: { body: revokeBody } }, async (request) => {
      const { kid: id, reason: why } = request.body
      return rotation.revoke({ actor: actor(request), kid: id, ...(why === undefined ? {} : { reason: why }) })
    })

    scope.post<{ Body: { secret?: SecretTarget, reason: string } }>('/api/admin/emergency', { schema: { body: emergencyBody } }, async (request) => {
      const { secret: target, reason: why } = request.body
      return rotation.emergency({ actor: actor(request), reason: why, ...(target === undefined ? {} : { secret: target }) })
    })

    scope.get<{ Querystring: { since?: string, limit?: string } }>('/api/admin/audit', { schema: { querystring: auditQuery } }, async (request) => {
      const since = parseSince(request.query.since)
      const limit = request.query.limit === undefined ? 1000 : Math.min(Number(request.query.limit), 10_000)
      const events = await service.store.listAudit({ ...(since === undefined ? {} : { since }), limit })
      return { events }
    })

    // As `rekey audit --verify`: the whole chain, every master-key segment, with the keys at hand.
    scope.get('/api/admin/audit/verify', async () => service.audit.verify())

    scope.post<{ Body: { name: string, method?: string, notes?: string, kind?: string } }>('/api/admin/record', { schema: { body: recordBody } }, async (request) => {
      const { name, method, notes, kind } = request.body
      const at = Date.now()
      const { secret: record, seq } = await recordRotation(service.store, service.audit, service.config.cadence, {
        secret: name, operator: actor(request).operator, requestId: request.id, method: method ?? 'manual', notes: notes ?? '', at,
        ...(kind === undefined ? {} : { kind }),
        ...(notes === undefined ? {} : { secretNotes: notes }),
      })
      const rotatedAt = record.lastRotatedAt ?? at
      return {
        secret: record.name, kind: record.kind, cadenceDays: record.cadenceDays, method: record.lastMethod,
        rotatedAt: new Date(rotatedAt).toISOString(), dueAt: new Date(rotatedAt + record.cadenceDays * 86_400_000).toISOString(), audit: { seq },
      }
    })
  })
}
