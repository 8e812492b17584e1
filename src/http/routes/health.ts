import type { FastifyInstance } from 'fastify'
import type { Service } from '../../service/service.ts'
import { STORE_RETRY_AFTER_SECONDS } from '../errors.ts'

/** `GET /api/health/ping` (the process answers) and `GET /api/health/ready` (store and keys). */
export function healthRoutes(app: FastifyInstance, service: Service): void {
  app.get('/api/health/ping', { logLevel: 'warn' }, async () => ({ status: 'ok' }))
  app.get('/api/health/ready', { logLevel: 'warn' }, async (_request, reply) => {
    if (await service.ready()) return { status: 'ready' }
    void reply.code(503).header('retry-after', String(STORE_RETRY_AFTER_SECONDS))
    return { error: 'not_ready', message: service.keys.loaded ? 'The store does not answer' : 'The keys are not loaded' }
  })
}
