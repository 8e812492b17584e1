import { createHash, timingSafeEqual } from 'node:crypto'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { ServiceError } from '../service/errors.ts'

/** The token of an `Authorization: Bearer` header; throws `unauthorized` (401) when there is none. */
export function bearerToken(request: FastifyRequest, reply: FastifyReply): string {
  const header = request.headers.authorization
  const match = typeof header === 'string' ? /^Bearer +([\x21-\x7e]+) *$/i.exec(header) : null
  if (match === null || match[1] === undefined) {
    void reply.header('www-authenticate', 'Bearer realm="rekey"')
    throw new ServiceError('unauthorized')
  }
  return match[1]
}

/** Compares two secrets in constant time (digests first, so lengths do not leak either). */
export function secretEquals(given: string, expected: Buffer): boolean {
  const a = createHash('sha256').update(given, 'utf8').digest()
  const b = createHash('sha256').update(expected).digest()
  return timingSafeEqual(a, b)
}
