import type { FastifyInstance } from 'fastify'
import type { Service } from '../../service/service.ts'
import { bearerToken, secretEquals } from '../bearer.ts'
import { ServiceError } from '../../service/errors.ts'

/** Default of REKEY_JWKS_MAX_AGE: how long clients and caches may keep the JWKS, seconds. */
export const JWKS_MAX_AGE = 300

/** `GET /.well-known/jwks.json` and `GET /metrics`. */
export function publicRoutes(app: FastifyInstance, service: Service): void {
  app.get('/.well-known/jwks.json', async (_request, reply) => {
    void reply.header('cache-control', `public, max-age=${service.config.jwksMaxAge ?? JWKS_MAX_AGE}`)
    // Served from memory: HMAC keys publish nothing, so a keyring of secrets answers { keys: [] }.
    return { keys: [...service.keys.access.jwks().keys] }
  })

  const token = service.config.metricsToken
  app.get('/metrics', { logLevel: 'warn' }, async (request, reply) => {
    if (token === undefined) {
      return reply.code(404).send({ error: 'not_found', message: 'Metrics are disabled: set METRICS_AUTH_TOKEN' })
    }
    let given: string
    try {
      given = bearerToken(request, reply)
    } catch {
      return reply.code(401).send({ error: 'unauthorized', message: 'A valid metrics Bearer token is required' })
    }
    if (!secretEquals(given, token.reveal())) {
      void reply.header('www-authenticate', 'Bearer realm="rekey-metrics"')
      throw new ServiceError('unauthorized', 'A valid metrics Bearer token is required')
    }
    const text = await service.metrics.registry.metrics()
    return reply.header('content-type', service.metrics.registry.contentType).send(text)
  })
}
