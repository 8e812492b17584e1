/**
 * The `Authorization: Bearer` header (RFC 6750 §2.1) and the 401 answer both adapters share.
 */
import { isRekeyError, type RekeyError, type ErrorCode } from '../core/errors.ts'

// The grammar lives in core so the service reads the header exactly as the middleware does.
export { bearerToken } from '../core/bearer.ts'

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

/** True for the errors the middleware answers with 401; anything else is the app's to handle. */
export function isAuthFailure(err: unknown): err is RekeyError {
  return isRekeyError(err) && err.status === 401
}

/** The 401 body for a failure. Built from code and message only, so nothing else can leak. */
export function failureBody(err: RekeyError): AuthFailureBody {
  return { error: err.code, message: err.message }
}
