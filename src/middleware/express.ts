/**
 * `rekey/express`: bearer-token authentication for Express 4 and 5 over a {@link Keyring}.
 *
 * ```ts
 * app.get('/me', requireAuth({ keyring, audience: 'api' }), (req, res) => res.json({ sub: req.auth?.sub }))
 * ```
 */
import type { NextFunction, Request, RequestHandler, Response } from 'express'
import type { Claims } from '../core/claims.ts'
import type { VerifyResult } from '../core/keyring.ts'
import { createAuthenticator, type AuthKey, type AuthOptions } from './authenticate.ts'
import { BEARER_CHALLENGE, failureBody, isAuthFailure } from './bearer.ts'

export { BEARER_CHALLENGE } from './bearer.ts'
export type { AuthFailureBody } from './bearer.ts'
export type { AuthKey, AuthOptions } from './authenticate.ts'

/** Options of {@link requireAuth}: a keyring, `keyring.verify` options, and optional hooks. */
export type RequireAuthOptions = AuthOptions

declare global {
  // Express types its Request through this global namespace; merging here types `req.auth`.
  namespace Express {
    interface Request {
      /** The verified token's claims, set by rekey's `requireAuth`. */
      auth?: Claims
      /** The kid and state of the key that verified the token, set by rekey's `requireAuth`. */
      authKey?: AuthKey
    }
  }
}

function answer(res: Response, next: NextFunction, err: unknown): void {
  if (!isAuthFailure(err)) {
    next(err)
    return
  }
  res.status(401).set('WWW-Authenticate', BEARER_CHALLENGE).json(failureBody(err))
}

function admit(req: Request, result: VerifyResult): void {
  req.auth = result.payload
  req.authKey = { kid: result.kid, state: result.state }
}

/**
 * A middleware that admits requests with a valid `Authorization: Bearer <token>` and
 * sets `req.auth` (the claims) and `req.authKey` (`{ kid, state }`). Any failure answers
 * 401 with `WWW-Authenticate: Bearer error="invalid_token"` and `{ error, message }`.
 * Errors other than token failures (an `isRevoked` whose store is down) go to `next(err)`.
 *
 * Options are checked here, once: misuse throws `TypeError`.
 */
export function requireAuth(options: RequireAuthOptions): RequestHandler {
  const authenticate = createAuthenticator(options, 'requireAuth')
  return function rekeyRequireAuth(req, res, next) {
    let outcome: VerifyResult | Promise<VerifyResult>
    try {
      outcome = authenticate(req.headers.authorization)
    } catch (err) {
      answer(res, next, err)
      return
    }
    if (outcome instanceof Promise) {
      outcome.then((result) => {
        admit(req, result)
        next()
      }, (err: unknown) => answer(res, next, err))
      return
    }
    admit(req, outcome)
    next()
  }
}
