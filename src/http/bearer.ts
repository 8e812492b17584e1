import type { FastifyReply, FastifyRequest } from 'fastify'
import { bearerToken as parseBearer } from '../core/bearer.ts'
import { ServiceError } from '../service/errors.ts'

// The constant-time compare has one home in core; re-exported for the routes that check static tokens.
export { secretEquals } from '../core/constant-time.ts'

/**
 * The token of an `Authorization: Bearer` header, read with the middleware's grammar; throws
 * `unauthorized` (401) when there is none or it is not a valid Bearer credential.
 */
export function bearerToken(request: FastifyRequest, reply: FastifyReply): string {
  try {
    return parseBearer(request.headers.authorization)
  } catch {
    void reply.header('www-authenticate', 'Bearer realm="rekey"')
    throw new ServiceError('unauthorized')
  }
}
