/**
 * The `Authorization: Bearer` header (RFC 6750 §2.1) and the 401 answer both adapters share.
 */
import { isRekeyError, RekeyError, type ErrorCode } from '../core/errors.ts'

/**
 * The `WWW-Authenticate` value of every 401 the middleware answers (contract §2.3).
 *
 * RFC 6750 §3.1 suggests no error code when the request carries no credentials at all;
 * the contract fixes one challenge for every failure instead, so clients need one rule.
 */
export const BEARER_CHALLENGE = 'Bearer error="invalid_token"'

/** The JSON body of a 401: the error's code and its message, never the token. */
export interface AuthFailureBody {
  error: ErrorCode
  message: string
}

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

/** True for the errors the middleware answers with 401; anything else is the app's to handle. */
export function isAuthFailure(err: unknown): err is RekeyError {
  return isRekeyError(err) && err.status === 401
}

/** The 401 body for a failure. Built from code and message only, so nothing else can leak. */
export function failureBody(err: RekeyError): AuthFailureBody {
  return { error: err.code, message: err.message }
}
