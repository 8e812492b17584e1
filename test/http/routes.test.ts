import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { claimsOf, credentials, headerOf, signedIn, testServer, type TestServer } from './support.ts'

const METRICS_TOKEN = 'metrics-token-for-tests-0123456789'

describe('routes (in-process, SQLite, managed keys)', () => {
  let server: TestServer
  before(async () => { server = await testServer({ env: { METRICS_AUTH_TOKEN: METRICS_TOKEN } }) })
  after(async () => { await server.stop() })

  test('GET /api/health/ping answers 200 { status: ok }', async () => {
    const res = await server.request('GET', '/api/health/ping')
    assert.equal(res.statusCode, 200)
    assert.deepEqual(res.json(), { status: 'ok' })
  })

  test('GET /api/health/ready answers 200 when the store answers and keys are loaded', async () => {
    const res = await server.request('GET', '/api/health/ready')
    assert.equal(res.statusCode, 200)
    assert.deepEqual(res.json(), { status: 'ready' })
  })

  test('register answers 201 { id, email } with the email lowercased, and 409 email_taken on reuse (any case)', async () => {
    const { email, password } = credentials()
    const res = await server.request('POST', '/api/auth/register', { body: { email: `  ${email.toUpperCase()}`, password } })
    assert.equal(res.statusCode, 201)
    const body = res.json() as { id: string, email: string }
    assert.deepEqual(Object.keys(body).sort(), ['email', 'id'])
    assert.equal(body.email, email)
    const again = await server.request('POST', '/api/auth/register', { body: { email, password } })
    assert.equal(again.statusCode, 409)
    assert.deepEqual(again.json(), { error: 'email_taken', message: 'An account with this email already exists' })
  })

  test('register refuses a bad email, a short password and a too-long password with 400', async () => {
    for (const body of [
      { email: 'not-an-email', password: 'long enough password' },
      { email: 'a@example.test', password: 'short' },
      { email: 'a@example.test', password: 'x'.repeat(1025) },
    ]) {
      const res = await server.request('POST', '/api/auth/register', { body })
      assert.equal(res.statusCode, 400, JSON.stringify(body).slice(0, 60))
      assert.equal((res.json() as { error: string }).error, 'validation_failed')
    }
  })

  test('register, login and the dashboard sign-in refuse control characters in the email with 400 validation_failed', async () => {
    for (const email of ['a\u0000b@example.test', 'a@example.test\u0000', 'a\nb@example.test', '\ta@example.test', 'a\u007f@example.test', 'a\u0085@example.test']) {
      for (const url of ['/api/auth/register', '/api/auth/login', '/admin/api/sign-in']) {
        const res = await server.request('POST', url, { body: { email, password: 'long enough password' } })
        const label = `${url} ${JSON.stringify(email)}`
        assert.equal(res.statusCode, 400, label)
        const body = res.json() as Record<string, unknown>
        assert.deepEqual(Object.keys(body).sort(), ['error', 'message'], label)
        assert.equal(body.error, 'validation_failed', label)
        assert.match(String(body.message), /email/, label)
      }
    }
  })

  test('login answers a pair: access token with sub, iat, exp, jti, ver and a kid header; refresh token', async () => {
    const user = await signedIn(server)
    const access = claimsOf(user.accessToken)
    assert.equal(access.sub, user.id)
    assert.equal(access.ver, 0)
    assert.equal(typeof access.jti, 'string')
    assert.equal((access.exp as number) - (access.iat as number), 900)
    assert.equal(typeof headerOf(user.accessToken).kid, 'string')
    const refresh = claimsOf(user.refreshToken)
    assert.equal(refresh.token_use, 'refresh')
    assert.equal((refresh.exp as number) - (refresh.iat as number), 7 * 86_400)
    assert.notEqual(headerOf(user.refreshToken).kid, headerOf(user.accessToken).kid, 'refresh tokens use their own key')
    const res = await server.request('POST', '/api/auth/login', { body: { email: user.email, password: user.password } })
    assert.equal(res.json().tokenType, 'Bearer')
    assert.equal(res.json().expiresIn, 900)
  })

  test('login answers the same 401 body for an unknown user and a wrong password', async () => {
    const user = await signedIn(server)
    const wrong = await server.request('POST', '/api/auth/login', { body: { email: user.email, password: 'wrong password!' } })
    const unknown = await server.request('POST', '/api/auth/login', { body: { email: 'nobody@example.test', password: 'wrong password!' } })
    assert.equal(wrong.statusCode, 401)
    assert.equal(unknown.statusCode, 401)
    assert.equal(wrong.body, unknown.body)
    assert.deepEqual(wrong.json(), { error: 'invalid_credentials', message: 'Invalid email or password' })
  })

  test('GET /api/auth/me answers { id, email, role } for a valid Bearer token', async () => {
    const user = await signedIn(server)
    const res = await server.request('GET', '/api/auth/me', { token: user.accessToken })
    assert.equal(res.statusCode, 200)
    assert.deepEqual(res.json(), { id: user.id, email: user.email, role: 'user' })
  })

  test('me refuses no token, a malformed token, a bad signature and a refresh token, with WWW-Authenticate', async () => {
    const user = await signedIn(server)
    const none = await server.request('GET', '/api/auth/me')
    assert.equal(none.statusCode, 401)
    assert.equal(none.json().error, 'unauthorized')
    assert.match(String(none.headers['www-authenticate']), /^Bearer/)
    const malformed = await server.request('GET', '/api/auth/me', { token: 'abc.def' })
    assert.equal(malformed.statusCode, 401)
    assert.equal(malformed.json().error, 'ERR_TOKEN_MALFORMED')
    assert.equal(malformed.headers['www-authenticate'], 'Bearer error="invalid_token"')
    const [h, p, s] = user.accessToken.split('.')
    const forged = `${h}.${p}.${(s ?? '').slice(0, -4)}AAAA`
    assert.equal((await server.request('GET', '/api/auth/me', { token: forged })).json().error, 'ERR_TOKEN_SIGNATURE')
    const asAccess = await server.request('GET', '/api/auth/me', { token: user.refreshToken })
    assert.equal(asAccess.statusCode, 401)
    assert.equal(asAccess.json().error, 'ERR_KEY_UNKNOWN')
  })

  test('refresh answers a new pair, and the old refresh token is then spent', async () => {
    const user = await signedIn(server)
    const res = await server.request('POST', '/api/auth/refresh', { body: { refreshToken: user.refreshToken } })
    assert.equal(res.statusCode, 200)
    const pair = res.json() as { accessToken: string, refreshToken: string }
    assert.notEqual(pair.refreshToken, user.refreshToken)
    assert.equal((await server.request('GET', '/api/auth/me', { token: pair.accessToken })).statusCode, 200)
    assert.equal(claimsOf(pair.refreshToken).exp, claimsOf(user.refreshToken).exp, 'a session keeps its expiry')
  })

  test('refresh refuses a garbage token and an access token with 401', async () => {
    const user = await signedIn(server)
    const garbage = await server.request('POST', '/api/auth/refresh', { body: { refreshToken: 'nope' } })
    assert.equal(garbage.statusCode, 401)
    assert.equal(garbage.json().error, 'ERR_TOKEN_MALFORMED')
    const access = await server.request('POST', '/api/auth/refresh', { body: { refreshToken: user.accessToken } })
    assert.equal(access.statusCode, 401)
  })

  test('logout answers 204 and ends the session: its refresh token is refused', async () => {
    const user = await signedIn(server)
    const res = await server.request('POST', '/api/auth/logout', { body: { refreshToken: user.refreshToken } })
    assert.equal(res.statusCode, 204)
    assert.equal(res.body, '')
    const refresh = await server.request('POST', '/api/auth/refresh', { body: { refreshToken: user.refreshToken } })
    assert.equal(refresh.statusCode, 401)
    assert.equal(refresh.json().error, 'ERR_TOKEN_REVOKED')
    assert.equal((await server.request('POST', '/api/auth/logout', { body: { refreshToken: user.refreshToken } })).statusCode, 204, 'logout is idempotent')
  })

  test('logout-all answers 204; every access token and session of the user ends, other users are untouched', async () => {
    const user = await signedIn(server)
    const other = await signedIn(server)
    const second = (await server.request('POST', '/api/auth/login', { body: { email: user.email, password: user.password } })).json() as { accessToken: string, refreshToken: string }
    const res = await server.request('POST', '/api/auth/logout-all', { token: user.accessToken })
    assert.equal(res.statusCode, 204)
    for (const token of [user.accessToken, second.accessToken]) {
      const me = await server.request('GET', '/api/auth/me', { token })
      assert.equal(me.statusCode, 401)
      assert.equal(me.json().error, 'ERR_TOKEN_REVOKED')
    }
    for (const refreshToken of [user.refreshToken, second.refreshToken]) {
      assert.equal((await server.request('POST', '/api/auth/refresh', { body: { refreshToken } })).statusCode, 401)
    }
    assert.equal((await server.request('GET', '/api/auth/me', { token: other.accessToken })).statusCode, 200)
    const again = await server.request('POST', '/api/auth/login', { body: { email: user.email, password: user.password } })
    const fresh = again.json() as { accessToken: string }
    assert.equal(claimsOf(fresh.accessToken).ver, 1)
    assert.equal((await server.request('GET', '/api/auth/me', { token: fresh.accessToken })).statusCode, 200)
  })

  test('logout-all needs a Bearer token and refuses a body', async () => {
    assert.equal((await server.request('POST', '/api/auth/logout-all')).statusCode, 401)
    const user = await signedIn(server)
    const res = await server.request('POST', '/api/auth/logout-all', { token: user.accessToken, body: { everything: true } })
    assert.equal(res.statusCode, 400)
    assert.equal(res.json().error, 'validation_failed')
  })

  test('GET /.well-known/jwks.json answers { keys: [] } for HMAC keys, with Cache-Control', async () => {
    const res = await server.request('GET', '/.well-known/jwks.json')
    assert.equal(res.statusCode, 200)
    assert.deepEqual(res.json(), { keys: [] })
    assert.equal(res.headers['cache-control'], 'public, max-age=300')
  })

  test('GET /metrics: 401 without or with a wrong token; Prometheus text with verifications per kid', async () => {
    assert.equal((await server.request('GET', '/metrics')).statusCode, 401)
    assert.equal((await server.request('GET', '/metrics', { token: 'wrong-token-wrong-token' })).statusCode, 401)
    const user = await signedIn(server)
    await server.request('GET', '/api/auth/me', { token: user.accessToken })
    await server.service.scheduler?.tick() // the lease holder publishes the live-session counts
    const res = await server.request('GET', '/metrics', { token: METRICS_TOKEN })
    assert.equal(res.statusCode, 200)
    assert.match(String(res.headers['content-type']), /^text\/plain/)
    const kid = String(headerOf(user.accessToken).kid)
    assert.match(res.body, new RegExp(`rekey_token_verifications_total\\{purpose="access",kid="${kid}",result="ok"\\} \\d+`))
    assert.match(res.body, /rekey_token_verify_duration_seconds_bucket/)
    assert.match(res.body, /rekey_logins_total\{result="ok"\} \d+/)
    assert.match(res.body, /rekey_live_sessions_age_seconds [\d.]+/)
    assert.match(res.body, /rekey_refresh_reuse_detected_total \d+/)
    assert.match(res.body, new RegExp(`rekey_key_age_seconds\\{kid="${kid}",purpose="access",state="current"\\} [\\d.]+`))
    assert.match(res.body, /rekey_key_set_version [1-9]\d*/)
  })

  test('bad input: malformed JSON, wrong types, unknown fields, missing fields → 400 { error, message }', async () => {
    const cases: Array<[string, { payload?: string, body?: unknown }, string]> = [
      ['malformed', { payload: '{"email":' }, 'invalid_json'],
      ['wrong type', { body: { email: 42, password: 'long enough password' } }, 'validation_failed'],
      ['unknown field', { body: { email: 'a@example.test', password: 'long enough password', admin: true } }, 'validation_failed'],
      ['missing field', { body: { email: 'a@example.test' } }, 'validation_failed'],
      ['array', { payload: '[]' }, 'validation_failed'],
    ]
    for (const [name, input, code] of cases) {
      const res = await server.request('POST', '/api/auth/login', { ...input, headers: { 'content-type': 'application/json' } })
      assert.equal(res.statusCode, 400, name)
      const body = res.json() as Record<string, unknown>
      assert.deepEqual(Object.keys(body).sort(), ['error', 'message'], name)
      assert.equal(body.error, code, name)
      assert.doesNotMatch(res.body, /at .*\.ts:\d+|node_modules/, `${name}: no stack`)
    }
  })

  test('a body over 64 KiB answers 413 payload_too_large', async () => {
    const res = await server.request('POST', '/api/auth/register', { payload: JSON.stringify({ email: 'a@example.test', password: 'x'.repeat(70_000) }), headers: { 'content-type': 'application/json' } })
    assert.equal(res.statusCode, 413)
    assert.equal(res.json().error, 'payload_too_large')
  })

  test('a body that is not JSON answers 415; an unknown route answers 404 { error, message }', async () => {
    const text = await server.request('POST', '/api/auth/login', { payload: 'email=a', headers: { 'content-type': 'text/plain' } })
    assert.equal(text.statusCode, 415)
    assert.equal(text.json().error, 'unsupported_media_type')
    const missing = await server.request('GET', '/api/nothing-here')
    assert.equal(missing.statusCode, 404)
    assert.deepEqual(missing.json(), { error: 'not_found', message: 'No route GET /api/nothing-here' })
  })
})

describe('registration switch', () => {
  test('REKEY_REGISTRATION=closed answers 403 registration_closed', async () => {
    const server = await testServer({ env: { REKEY_REGISTRATION: 'closed' } })
    try {
      const res = await server.request('POST', '/api/auth/register', { body: credentials() })
      assert.equal(res.statusCode, 403)
      assert.deepEqual(res.json(), { error: 'registration_closed', message: 'Registration is closed' })
    } finally {
      await server.stop()
    }
  })
})

describe('metrics switch', () => {
  test('without METRICS_AUTH_TOKEN, /metrics answers 404', async () => {
    const server = await testServer()
    try {
      const res = await server.request('GET', '/metrics', { token: METRICS_TOKEN })
      assert.equal(res.statusCode, 404)
      assert.equal(res.json().error, 'not_found')
    } finally {
      await server.stop()
    }
  })
})

describe('docs/service.md', () => {
  test('documents every service error code, and names no code that does not exist', async () => {
    const { readFileSync } = await import('node:fs')
    const { SERVICE_ERRORS } = await import('../../src/service/errors.ts')
    const doc = readFileSync(new URL('../../docs/service.md', import.meta.url), 'utf8')
    const table = doc.slice(doc.indexOf('### Error codes'), doc.indexOf('## Tokens'))
    const documented = [...table.matchAll(/^\| `([a-z_]+)` \|/gm)].map((m) => m[1])
    assert.deepEqual(documented.sort(), Object.keys(SERVICE_ERRORS).sort())
  })
})
