/**
 * `rekey/fastify`: bearer-token authentication for Fastify 5 over a {@link Keyring}.
 *
 * ```ts
 * await app.register(rekeyAuth, { keyring, audience: 'api' })
 * app.get('/me', { onRequest: app.requireAuth }, async (request) => ({ sub: request.auth?.sub }))
 * ```
 */
import type { FastifyPluginCallback, FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify'
import { fastifyPlugin } from 'fastify-plugin'
import type { Claims } from '../core/claims.ts'
import type { VerifyResult } from '../core/keyring.ts'
import { createAuthenticator, type AuthKey, type AuthOptions } from './authenticate.ts'
import { BEARER_CHALLENGE, failureBody, isAuthFailure } from './bearer.ts'

export { BEARER_CHALLENGE } from './bearer.ts'
export type { AuthFailureBody } from './bearer.ts'
export type { AuthKey, AuthOptions } from './authenticate.ts'

/** Options of the {@link rekeyAuth} plugin: those of {@link requireAuth}, and `global`. */
export interface RekeyAuthOptions extends AuthOptions {
  /**
   * Protect every route of the scope the plugin is registered in (and its children) with
   * an `onRequest` hook. Default false: protect routes one by one with `app.requireAuth`.
   */
  global?: boolean
}

/** A hook that admits a request or answers 401; usable as `onRequest` or `preHandler`. */
export type RekeyAuthHook = (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction) => void

declare module 'fastify' {
  interface FastifyRequest {
    /** The verified token's claims; `null` until an auth hook admitted the request. */
    auth: Claims | null
    /** The kid and state of the key that verified the token; `null` until then. */
    authKey: AuthKey | null
  }
  interface FastifyInstance {
    /** The hook of the registered {@link rekeyAuth} plugin: `{ onRequest: app.requireAuth }`. */
    requireAuth: RekeyAuthHook
  }
}

// Fastify's own register options reach the plugin with ours; they are not misspellings.
const REGISTER_KEYS = ['prefix', 'logLevel', 'logSerializers']

function answer(reply: FastifyReply, done: HookHandlerDoneFunction, err: unknown): void {
  if (!isAuthFailure(err)) {
    done(err as Error)
    return
  }
  // An early reply ends the hook chain; done is not called after it.
  reply.code(401).header('www-authenticate', BEARER_CHALLENGE).send(failureBody(err))
}

function admit(request: FastifyRequest, result: VerifyResult): void {
  request.auth = result.payload
  request.authKey = { kid: result.kid, state: result.state }
}

function hookOf(options: AuthOptions, where: string, extraKeys?: readonly string[]): RekeyAuthHook {
  const authenticate = createAuthenticator(options, where, extraKeys)
  return function rekeyRequireAuth(request, reply, done) {
    let outcome: VerifyResult | Promise<VerifyResult>
    try {
      outcome = authenticate(request.headers.authorization)
    } catch (err) {
      answer(reply, done, err)
      return
    }
    if (outcome instanceof Promise) {
      outcome.then((result) => {
        admit(request, result)
        done()
      }, (err: unknown) => answer(reply, done, err))
      return
    }
    admit(request, outcome)
    done()
  }
}

/**
 * A hook with its own options, for a second policy beside the plugin's (an admin
 * audience, say): `{ onRequest: requireAuth({ keyring, audience: 'admin' }) }`. It sets
 * `request.auth` and `request.authKey`; register {@link rekeyAuth} once so they are
 * decorated. Options are checked here, once: misuse throws `TypeError`.
 */
export function requireAuth(options: AuthOptions): RekeyAuthHook {
  return hookOf(options, 'requireAuth')
}

const plugin: FastifyPluginCallback<RekeyAuthOptions> = (app, options, done) => {
  let hook: RekeyAuthHook
  try {
    if (options?.global !== undefined && typeof options.global !== 'boolean') throw new TypeError('rekeyAuth: global must be a boolean')
    const { global: protectAll, ...rest } = options ?? {}
    hook = hookOf(rest as AuthOptions, 'rekeyAuth', REGISTER_KEYS)
    if (protectAll === true) app.addHook('onRequest', hook)
  } catch (err) {
    done(err as Error)
    return
  }
  app.decorateRequest('auth', null)
  app.decorateRequest('authKey', null)
  app.decorate('requireAuth', hook)
  done()
}

/**
 * The Fastify plugin: `app.register(rekeyAuth, { keyring, ...verifyOptions })`.
 *
 * Decorates `request.auth` (the claims) and `request.authKey` (`{ kid, state }`), both
 * `null` until a request is admitted, and `app.requireAuth`, the hook to put on the
 * routes to protect; with `global: true` every route of the scope is protected. Any
 * failure answers 401 with `WWW-Authenticate: Bearer error="invalid_token"` and
 * `{ error, message }`. Misuse of the options fails the registration with a `TypeError`.
 */
export const rekeyAuth = fastifyPlugin(plugin, { name: 'rekey-auth', fastify: '5.x' })
