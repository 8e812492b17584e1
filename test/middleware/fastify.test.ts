import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify'
import { generateSecret, Keyring, RekeyError } from '../../src/index.ts'
import type { VerifyResult } from '../../src/index.ts'
import { rekeyAuth, requireAuth } from '../../src/middleware/fastify.ts'
import { assertRefused, makeFixture, type Answer } from './fixtures.ts'

const fx = makeFixture()
const verified: VerifyResult[] = []
const failures: string[] = []

function show(request: FastifyRequest): unknown {
  return { sub: request.auth?.sub ?? null, auth: request.auth, authKey: request.authKey }
}

async function buildApp(): Promise<FastifyInstance> {
  const app = Fastify()
  await app.register(rekeyAuth, {
    keyring: fx.keyring,
    onVerified: (result) => verified.push(result),
    onError: (err) => failures.push(err.code),
  })
  app.get('/public', async (request) => show(request))
  app.get('/me', { onRequest: app.requireAuth }, async (request) => show(request))
  app.get('/pre', { preHandler: app.requireAuth }, async (request) => show(request))
  app.get('/api', { onRequest: requireAuth({ keyring: fx.keyring, audience: 'api' }) }, async (request) => show(request))
  app.get('/revocable', {
    onRequest: requireAuth({ keyring: fx.keyring, isRevoked: async (result) => result.payload.jti === 'jti-revoked' }),
  }, async (request) => show(request))
  app.get('/store-down', {
    onRequest: requireAuth({
      keyring: fx.keyring,
      isRevoked: async () => { throw new RekeyError('ERR_STORE_UNAVAILABLE', 'The store did not answer') },
    }),
  }, async (request) => show(request))
  app.register(async (scope) => {
    // The usual way to protect a group of routes: a hook in an encapsulated scope.
    scope.addHook('onRequest', app.requireAuth)
    scope.get('/scoped', async (request) => show(request))
  })
  return app
}

async function call(app: FastifyInstance, url: string, authorization?: string): Promise<Answer> {
  const res = await app.inject({ method: 'GET', url, headers: authorization === undefined ? {} : { authorization } })
  const headers = res.headers
  return {
    status: res.statusCode,
    challenge: headers['www-authenticate'] as string | undefined,
    contentType: headers['content-type'] as string | undefined,
    raw: [...Object.values(headers).map(String), res.body].join('\n'),
    body: res.json() as unknown,
  }
}

describe('rekey/fastify rekeyAuth (Fastify 5, inject)', () => {
  let app: FastifyInstance
  before(async () => { app = await buildApp() })
  after(async () => { await app.close() })

  it('admits a valid token and decorates request.auth and request.authKey', async () => {
    for (const url of ['/me', '/pre', '/scoped']) {
      const answer = await call(app, url, `Bearer ${fx.valid}`)
      assert.equal(answer.status, 200, url)
      const body = answer.body as { sub: string, auth: Record<string, unknown>, authKey: unknown }
      assert.equal(body.sub, 'user-1')
      assert.equal(body.auth.role, 'member')
      assert.deepEqual(body.authKey, { kid: fx.kidB, state: 'current' })
    }
  })

  it('leaves request.auth null on routes it does not protect', async () => {
    const answer = await call(app, '/public', `Bearer ${fx.valid}`)
    assert.equal(answer.status, 200)
    assert.deepEqual(answer.body, { sub: null, auth: null, authKey: null })
  })

  it('admits a token of the previous key during the grace window, naming its state', async () => {
    const answer = await call(app, '/me', `bearer ${fx.graceToken}`)
    assert.equal(answer.status, 200)
    assert.deepEqual((answer.body as { authKey: unknown }).authKey, { kid: fx.kidA, state: 'previous' })
  })

  it('refuses a request without Authorization header', async () => {
    for (const url of ['/me', '/pre', '/scoped']) assertRefused(await call(app, url), 'ERR_TOKEN_MALFORMED', 'Missing bearer token')
  })

  it('refuses another scheme and malformed credentials', async () => {
    assertRefused(await call(app, '/me', `Token ${fx.valid}`), 'ERR_TOKEN_MALFORMED', 'The Authorization header does not use the Bearer scheme', fx.valid)
    assertRefused(await call(app, '/me', `Bearer ${fx.valid} ${fx.valid}`), 'ERR_TOKEN_MALFORMED', 'The Authorization header is not a valid Bearer credential', fx.valid)
    assertRefused(await call(app, '/me', 'Bearer abc.def'), 'ERR_TOKEN_MALFORMED', 'The token is not a compact JWS')
  })

  it('refuses a token once its exp has passed (frozen clock)', async (t) => {
    const start = Date.UTC(2030, 0, 1)
    t.mock.timers.enable({ apis: ['Date'], now: start })
    const token = fx.keyring.sign({ sub: 'user-1' }, { expiresIn: '15m' })
    assert.equal((await call(app, '/me', `Bearer ${token}`)).status, 200)
    t.mock.timers.setTime(start + 15 * 60_000 - 1000)
    assert.equal((await call(app, '/me', `Bearer ${token}`)).status, 200)
    t.mock.timers.setTime(start + 15 * 60_000)
    assertRefused(await call(app, '/me', `Bearer ${token}`), 'ERR_TOKEN_EXPIRED', 'The token has expired', token)
  })

  it('refuses a forged payload, an unknown key and a revoked key with their codes', async () => {
    assertRefused(await call(app, '/me', `Bearer ${fx.forged}`), 'ERR_TOKEN_SIGNATURE', 'The token signature is invalid', fx.forged)
    assertRefused(await call(app, '/me', `Bearer ${fx.unknownKidToken}`), 'ERR_KEY_UNKNOWN', 'The token names an unknown key', fx.unknownKidToken)
    assertRefused(await call(app, '/me', `Bearer ${fx.revokedKeyToken}`), 'ERR_KEY_REVOKED', /^The key \S+ was revoked$/, fx.revokedKeyToken)
    assertRefused(await call(app, '/me', `Bearer ${fx.expired}`), 'ERR_TOKEN_EXPIRED', 'The token has expired', fx.expired)
  })

  it('checks the audience of a requireAuth hook with its own options', async () => {
    assert.equal((await call(app, '/api', `Bearer ${fx.forApi}`)).status, 200)
    assertRefused(await call(app, '/api', `Bearer ${fx.forOther}`), 'ERR_TOKEN_CLAIM', 'Unexpected "aud" claim value', fx.forOther)
  })

  it('refuses what isRevoked reports and hands its failures to the error handler', async () => {
    const revoked = fx.keyring.sign({ sub: 'user-2' }, { jwtId: 'jti-revoked' })
    assert.equal((await call(app, '/revocable', `Bearer ${fx.valid}`)).status, 200)
    assertRefused(await call(app, '/revocable', `Bearer ${revoked}`), 'ERR_TOKEN_REVOKED', 'The token was revoked', revoked)
    const down = await call(app, '/store-down', `Bearer ${fx.valid}`)
    assert.equal(down.status, 503)
    assert.equal((down.body as { code: string }).code, 'ERR_STORE_UNAVAILABLE')
    assert.equal(down.challenge, undefined)
  })

  it('calls onVerified with the kid and state, and onError with the code', async () => {
    verified.length = 0
    failures.length = 0
    await call(app, '/me', `Bearer ${fx.valid}`)
    await call(app, '/me', `Bearer ${fx.graceToken}`)
    await call(app, '/me', `Bearer ${fx.revokedKeyToken}`)
    await call(app, '/public')
    assert.deepEqual(verified.map((r) => [r.kid, r.state]), [[fx.kidB, 'current'], [fx.kidA, 'previous']])
    assert.deepEqual(failures, ['ERR_KEY_REVOKED'])
  })
})

describe('rekey/fastify options', () => {
  it('global: true protects every route of the scope', async () => {
    const app = Fastify()
    app.get('/early', async (request) => show(request))
    await app.register(rekeyAuth, { keyring: fx.keyring, global: true })
    app.get('/late', async (request) => show(request))
    try {
      for (const url of ['/early', '/late', '/missing']) {
        assertRefused(await call(app, url), 'ERR_TOKEN_MALFORMED', 'Missing bearer token')
      }
      const ok = await call(app, '/late', `Bearer ${fx.valid}`)
      assert.equal(ok.status, 200)
      assert.equal((ok.body as { sub: string }).sub, 'user-1')
    } finally {
      await app.close()
    }
  })

  it('follows keyring.update: a key revoked after registration is refused at once', async () => {
    const a = generateSecret()
    const keyring = Keyring.fromKeys([{ secret: a, state: 'current' }])
    const token = keyring.sign({ sub: 'u' })
    const app = Fastify()
    await app.register(rekeyAuth, { keyring, global: true })
    app.get('/x', async () => ({ ok: true }))
    try {
      assert.equal((await call(app, '/x', `Bearer ${token}`)).status, 200)
      keyring.update([{ secret: generateSecret(), state: 'current' }, { secret: a, state: 'revoked' }])
      assertRefused(await call(app, '/x', `Bearer ${token}`), 'ERR_KEY_REVOKED', /was revoked/, token)
    } finally {
      await app.close()
    }
  })

  it('fails the registration with a TypeError on misuse, naming every problem', async () => {
    const cases: [unknown, RegExp][] = [
      [{}, /^rekeyAuth: keyring must be a rekey Keyring$/],
      [{ keyring: fx.keyring, audiance: 'api', isRevoked: true }, /^rekeyAuth: isRevoked must be a function; unknown option "audiance"$/],
      [{ keyring: fx.keyring, maxTokenAge: -1 }, /^rekeyAuth: maxTokenAge must be/],
      [{ keyring: fx.keyring, global: 'yes' }, /^rekeyAuth: global must be a boolean$/],
    ]
    for (const [options, message] of cases) {
      const app = Fastify()
      await assert.rejects(async () => { await app.register(rekeyAuth, options as never) }, { name: 'TypeError', message })
      await app.close()
    }
    assert.throws(() => requireAuth({ keyring: fx.keyring, issuer: 42 } as never), { name: 'TypeError', message: /^requireAuth: issuer must be/ })
  })

  it('accepts Fastify\'s own register options beside its own', async () => {
    const app = Fastify()
    await app.register(rekeyAuth, { keyring: fx.keyring, logLevel: 'warn' } as never)
    await app.close()
  })
})
