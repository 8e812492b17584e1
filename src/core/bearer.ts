/**
 * The `Authorization: Bearer` grammar (RFC 6750 §2.1), written once for the service and the
 * middleware.
 */
import { RekeyError } from './errors.ts'

// credentials = "Bearer" 1*SP b64token; b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
// The scheme is case-insensitive (RFC 9110 §11.1). Linear: no class overlaps its neighbour.
const BEARER = /^bearer +([A-Za-z0-9\-._~+/]+=*)$/i
const SCHEME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+(?: |$)/

/**
 * The token of an `Authorization` header value. Throws `ERR_TOKEN_MALFORMED` when the
 * header is absent, names another scheme, or is not exactly `Bearer <b64token>`.
 */
export function bearerToken(header: unknown): string {
  if (header === undefined || header === '') throw new RekeyError('ERR_TOKEN_MALFORMED', 'Missing bearer token')
  if (typeof header !== 'string') {
    // Node keeps one Authorization header; an array here means a hand-built request.
    throw new RekeyError('ERR_TOKEN_MALFORMED', 'The Authorization header is not a single Bearer credential')
  }
  const match = BEARER.exec(header)
  if (match !== null) return match[1] as string
  const scheme = SCHEME.exec(header)
  if (scheme !== null && !/^bearer(?: |$)/i.test(scheme[0])) {
    throw new RekeyError('ERR_TOKEN_MALFORMED', 'The Authorization header does not use the Bearer scheme')
  }
  throw new RekeyError('ERR_TOKEN_MALFORMED', 'The Authorization header is not a valid Bearer credential')
}
