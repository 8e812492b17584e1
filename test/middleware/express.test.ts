import assert from 'node:assert/strict'
import type { AddressInfo } from 'node:net'
import type { Server } from 'node:http'
import { after, before, describe, it } from 'node:test'
import express, { type NextFunction, type Request, type Response } from 'express'
import { generateSecret, Keyring, RekeyError } from '../../src/index.ts'
import type { VerifyResult } from '../../src/index.ts'
import { requireAuth } from '../../src/middleware/express.ts'
import { assertRefused, makeFixture, type Answer } from './fixtures.ts'

const fx = makeFixture()
const revokedJtis = new Set(['jti-revoked'])
const verified: VerifyResult[] = []
const failures: string[] = []

function buildApp(): express.Express {
  const app = express()
  const show = (req: Request, res: Response): void => {
    res.json({ sub: req.auth?.sub, auth: req.auth, authKey: req.authKey })
  }
  app.get('/me', requireAuth({ keyring: fx.keyring }), show)
  app.get('/api', requireAuth({ keyring: fx.keyring, audience: 'api' }), show)
  app.get('/counted', requireAuth({
    keyring: fx.keyring,
    onVerified: (result) => verified.push(result),
    onError: (err) => failures.push(err.code),
  }), show)
  app.get('/revocable', requireAuth({
    keyring: fx.keyring,
    isRevoked: async (result) => revokedJtis.has(String(result.payload.jti)),
  }), show)
  app.get('/revocable-sync', requireAuth({ keyring: fx.keyring, isRevoked: (result) => result.payload.sub === 'user-1' }), show)
  app.get('/store-down', requireAuth({
    keyring: fx.keyring,
    isRevoked: async () => { throw new RekeyError('ERR_STORE_UNAVAILABLE', 'The store did not answer') },
  }), show)
  app.get('/sloppy', requireAuth({ keyring: fx.keyring, isRevoked: (() => undefined) as unknown as () => boolean }), show)
  app.use((err: unknown, _req: Request, res: Response, _next: NextFunction) => {
    res.status(500).json({ handled: err instanceof Error ? err.name : 'unknown', code: (err as { code?: string }).code })
  })
  return app
}

describe('rekey/express requireAuth (Express 5, real socket)', () => {
  let server: Server
  let base: string

  before(async () => {
    server = buildApp().listen(0, '127.0.0.1')
    await new Promise<void>((resolve, reject) => server.once('listening', resolve).once('error', reject))
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  })
  after(async () => {
    server.closeAllConnections()
    await new Promise<void>((resolve) => server.close(() => resolve()))
  })

  async function call(path: string, authorization?: string): Promise<Answer> {
    const res = await fetch(base + path, authorization === undefined ? {} : { headers: { authorization } })
    const text = await res.text()
    return {
      status: res.status,
      challenge: res.headers.get('www-authenticate') ?? undefined,
      contentType: res.headers.get('content-type') ?? undefined,
      raw: [...res.headers.values(), text].join('\n'),
      body: JSON.parse(text) as unknown,
    }
  }

  it('admits a valid token and exposes its claims and key on req', async () => {
    const answer = await call('/me', `Bearer ${fx.valid}`)
    assert.equal(answer.status, 200)
    assert.equal(answer.challenge, undefined)
    const body = answer.body as { sub: string, auth: Record<string, unknown>, authKey: unknown }
    assert.equal(body.sub, 'user-1')
    assert.equal(body.auth.role, 'member')
    assert.equal(body.auth.jti, 'jti-1')
    assert.deepEqual(body.authKey, { kid: fx.kidB, state: 'current' })
  })

  it('accepts the scheme in any case and several spaces before the token (RFC 6750 §2.1)', async () => {
    assert.equal((await call('/me', `bearer ${fx.valid}`)).status, 200)
    assert.equal((await call('/me', `BEARER   ${fx.valid}`)).status, 200)
  })

  it('admits a token of the previous key during the grace window, naming its state', async () => {
    const answer = await call('/me', `Bearer ${fx.graceToken}`)
    assert.equal(answer.status, 200)
    assert.deepEqual((answer.body as { authKey: unknown }).authKey, { kid: fx.kidA, state: 'previous' })
  })

  it('refuses a request without Authorization header', async () => {
    assertRefused(await call('/me'), 'ERR_TOKEN_MALFORMED', 'Missing bearer token')
  })

  it('refuses another scheme', async () => {
    const header = `Basic ${Buffer.from('user:pass').toString('base64')}`
    assertRefused(await call('/me', header), 'ERR_TOKEN_MALFORMED', 'The Authorization header does not use the Bearer scheme')
    // Without the space the whole run of token characters is the scheme name (RFC 9110 §11.1).
    assertRefused(await call('/me', `Bearer${fx.valid}`), 'ERR_TOKEN_MALFORMED', 'The Authorization header does not use the Bearer scheme', fx.valid)
  })

  for (const header of ['Bearer', 'Bearer ', `Bearer ${fx.valid} extra`, `Bearer\t${fx.valid}`, `Bearer "${fx.valid}"`]) {
    it(`refuses a malformed credential: ${JSON.stringify(header.slice(0, 12))}…`, async () => {
      assertRefused(await call('/me', header), 'ERR_TOKEN_MALFORMED', 'The Authorization header is not a valid Bearer credential', fx.valid)
    })
  }

  it('refuses a bearer token that is not a JWS', async () => {
    assertRefused(await call('/me', 'Bearer not-a-jwt'), 'ERR_TOKEN_MALFORMED', /compact JWS/)
  })

  it('refuses an expired token', async () => {
    assertRefused(await call('/me', `Bearer ${fx.expired}`), 'ERR_TOKEN_EXPIRED', 'The token has expired', fx.expired)
  })

  it('refuses a forged payload (bad signature)', async () => {
    assertRefused(await call('/me', `Bearer ${fx.forged}`), 'ERR_TOKEN_SIGNATURE', 'The token signature is invalid', fx.forged)
  })

  it('refuses a token of an unknown key', async () => {
    assertRefused(await call('/me', `Bearer ${fx.unknownKidToken}`), 'ERR_KEY_UNKNOWN', 'The token names an unknown key', fx.unknownKidToken)
  })

  it('refuses a token of a revoked key', async () => {
    assertRefused(await call('/me', `Bearer ${fx.revokedKeyToken}`), 'ERR_KEY_REVOKED', /^The key \S+ was revoked$/, fx.revokedKeyToken)
  })

  it('checks the audience', async () => {
    assert.equal((await call('/api', `Bearer ${fx.forApi}`)).status, 200)
    assertRefused(await call('/api', `Bearer ${fx.forOther}`), 'ERR_TOKEN_CLAIM', 'Unexpected "aud" claim value', fx.forOther)
    assertRefused(await call('/api', `Bearer ${fx.valid}`), 'ERR_TOKEN_CLAIM', 'Unexpected "aud" claim value', fx.valid)
  })

  it('follows keyring.update: a key revoked after the middleware was built is refused at once', async () => {
    const a = generateSecret()
    const keyring = Keyring.fromKeys([{ secret: a, state: 'current' }])
    const token = keyring.sign({ sub: 'u' })
    const app = express().get('/x', requireAuth({ keyring }), (_req, res) => { res.json({ ok: true }) })
    const local = app.listen(0, '127.0.0.1')
    await new Promise<void>((resolve) => local.once('listening', resolve))
    const url = `http://127.0.0.1:${(local.address() as AddressInfo).port}/x`
    try {
      assert.equal((await fetch(url, { headers: { authorization: `Bearer ${token}` } })).status, 200)
      keyring.update([{ secret: generateSecret(), state: 'current' }, { secret: a, state: 'revoked' }])
      const res = await fetch(url, { headers: { authorization: `Bearer ${token}` } })
      assert.equal(res.status, 401)
      assert.equal(((await res.json()) as { error: string }).error, 'ERR_KEY_REVOKED')
    } finally {
      local.closeAllConnections()
      await new Promise<void>((resolve) => local.close(() => resolve()))
    }
  })

  it('calls onVerified with the kid and state, and onError with the code', async () => {
    verified.length = 0
    failures.length = 0
    await call('/counted', `Bearer ${fx.valid}`)
    await call('/counted', `Bearer ${fx.graceToken}`)
    await call('/counted', `Bearer ${fx.expired}`)
    await call('/counted')
    assert.deepEqual(verified.map((r) => [r.kid, r.state]), [[fx.kidB, 'current'], [fx.kidA, 'previous']])
    assert.deepEqual(failures, ['ERR_TOKEN_EXPIRED', 'ERR_TOKEN_MALFORMED'])
  })

  it('refuses a token isRevoked reports, async or sync', async () => {
    const revoked = fx.keyring.sign({ sub: 'user-2' }, { jwtId: 'jti-revoked' })
    assert.equal((await call('/revocable', `Bearer ${fx.valid}`)).status, 200)
    assertRefused(await call('/revocable', `Bearer ${revoked}`), 'ERR_TOKEN_REVOKED', 'The token was revoked', revoked)
    assertRefused(await call('/revocable-sync', `Bearer ${fx.valid}`), 'ERR_TOKEN_REVOKED', 'The token was revoked', fx.valid)
    assert.equal((await call('/revocable-sync', `Bearer ${revoked}`)).status, 200)
  })

  it('passes a failing isRevoked to the error handler instead of admitting or answering 401', async () => {
    const down = await call('/store-down', `Bearer ${fx.valid}`)
    assert.equal(down.status, 500)
    assert.deepEqual(down.body, { handled: 'RekeyError', code: 'ERR_STORE_UNAVAILABLE' })
    const sloppy = await call('/sloppy', `Bearer ${fx.valid}`)
    assert.equal(sloppy.status, 500)
    assert.deepEqual(sloppy.body, { handled: 'TypeError' })
  })

  it('throws TypeError at creation on misuse, naming every problem', () => {
    assert.throws(() => requireAuth(undefined as never), TypeError)
    assert.throws(() => requireAuth({} as never), { name: 'TypeError', message: 'requireAuth: keyring must be a rekey Keyring' })
    assert.throws(
      () => requireAuth({ keyring: fx.keyring, audiance: 'api', onError: 'log' } as never),
      { name: 'TypeError', message: 'requireAuth: onError must be a function; unknown option "audiance"' },
    )
    assert.throws(() => requireAuth({ keyring: fx.keyring, clockTolerance: 'soon' }), { name: 'TypeError', message: /^requireAuth: clockTolerance must be/ })
    assert.throws(() => requireAuth({ keyring: fx.keyring, audience: [] }), { name: 'TypeError', message: /^requireAuth: audience must be/ })
  })
})
