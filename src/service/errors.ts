/**
 * The service's own refusals, next to the RekeyError catalog: short snake-case codes with
 * their HTTP status. `docs/service.md` lists them.
 */

/** Codes the HTTP service answers with besides RekeyError codes. */
export const SERVICE_ERRORS = Object.freeze({
  invalid_credentials: { status: 401, message: 'Invalid email or password' },
  email_taken: { status: 409, message: 'An account with this email already exists' },
  registration_closed: { status: 403, message: 'Registration is closed' },
  validation_failed: { status: 400, message: 'The request is invalid' },
  invalid_json: { status: 400, message: 'The body is not valid JSON' },
  bad_request: { status: 400, message: 'The request is malformed' },
  headers_too_large: { status: 431, message: 'The request headers are too large' },
  request_timeout: { status: 408, message: 'The request did not arrive in time' },
  unsupported_media_type: { status: 415, message: 'The body must be application/json' },
  payload_too_large: { status: 413, message: 'The body is larger than 64 KiB' },
  not_found: { status: 404, message: 'No such route' },
  method_not_allowed: { status: 405, message: 'Method not allowed' },
  rate_limited: { status: 429, message: 'Too many requests; retry later' },
  unauthorized: { status: 401, message: 'A Bearer token is required' },
  forbidden: { status: 403, message: 'This route needs the admin role' },
  password_change_required: { status: 403, message: 'This account must set a new password: POST /api/auth/password with the passwordChangeToken as Bearer' },
  not_ready: { status: 503, message: 'The service is not ready' },
  internal_error: { status: 500, message: 'Internal error' },
} as const)

export type ServiceErrorCode = keyof typeof SERVICE_ERRORS

/** A refusal with a {@link SERVICE_ERRORS} code. */
export class ServiceError extends Error {
  readonly code: ServiceErrorCode
  readonly status: number
  /** Seconds, for a `Retry-After` header (429). */
  readonly retryAfter: number | undefined
  /** Fields answered beside `error` and `message` (the password-change token of `password_change_required`). */
  readonly details: Readonly<Record<string, string | number>> | undefined

  constructor(code: ServiceErrorCode, message: string = SERVICE_ERRORS[code].message,
    extra: { retryAfter?: number, details?: Record<string, string | number> } = {}) {
    super(message)
    this.code = code
    this.status = SERVICE_ERRORS[code].status
    this.retryAfter = extra.retryAfter
    this.details = extra.details === undefined ? undefined : Object.freeze({ ...extra.details })
  }

  override get name(): string {
    return 'ServiceError'
  }
}
