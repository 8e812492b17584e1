import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { test } from 'node:test'
import { credentials, testServer } from './support.ts'

test('nothing the service logs contains a password, a token or a secret it used', async () => {
  const secrets = {
    JWT_ACCESS_SECRET: randomBytes(32).toString('hex'),
    JWT_REFRESH_SECRET: randomBytes(32).toString('hex'),
    REKEY_MASTER_KEY: randomBytes(32).toString('base64'),
    METRICS_AUTH_TOKEN: randomBytes(24).toString('hex'),
  }
  const server = await testServer({ env: { ...secrets, REKEY_LOG_LEVEL: 'trace' } })
  const used: string[] = Object.values(secrets)
  try {
    const creds = credentials()
    used.push(creds.password)
    await server.request('POST', '/api/auth/register', { body: creds })
    await server.request('POST', '/api/auth/register', { body: creds })
    await server.request('POST', '/api/auth/login', { body: { ...creds, password: `${creds.password}-wrong` } })
    used.push(`${creds.password}-wrong`)
    const pair = (await server.request('POST', '/api/auth/login', { body: creds })).json() as { accessToken: string, refreshToken: string }
    used.push(pair.accessToken, pair.refreshToken)
    await server.request('GET', '/api/auth/me', { token: pair.accessToken, headers: { cookie: `session=${pair.refreshToken}` } })
    const next = (await server.request('POST', '/api/auth/refresh', { body: { refreshToken: pair.refreshToken } })).json() as { accessToken: string, refreshToken: string }
    used.push(next.accessToken, next.refreshToken)
    server.clock.advance(60_000)
    await server.request('POST', '/api/auth/refresh', { body: { refreshToken: pair.refreshToken } }) // reuse: logged as a warning
    await server.request('POST', '/api/auth/login', { payload: `{"email":"${creds.email}","password":"${creds.password}"`, headers: { 'content-type': 'application/json' } })
    await server.request('POST', '/api/auth/login', { body: { ...creds, extra: 'x' } })
    await server.request('GET', '/metrics', { token: secrets.METRICS_AUTH_TOKEN })
    await server.request('GET', '/metrics', { token: `${secrets.METRICS_AUTH_TOKEN}x` })
    await server.request('POST', '/api/auth/logout', { body: { refreshToken: next.refreshToken } })
    await server.request('POST', '/api/auth/logout-all', { token: next.accessToken })
    await server.request('GET', '/api/auth/me', { token: next.accessToken })
  } finally {
    await server.stop()
  }
  const text = server.logs.text
  assert.ok(server.logs.lines.length > 20, 'the run logged requests')
  assert.match(text, /refresh token reuse detected/)
  for (const value of used) {
    assert.ok(!text.includes(value), `a secret value (${value.length} chars) appears in the logs`)
    // Each part of a JWT is sensitive on its own (the signature above all).
    for (const part of value.split('.').filter((p) => p.length > 20)) assert.ok(!text.includes(part), 'a token segment appears in the logs')
  }
  for (const line of server.logs.lines) JSON.parse(line)
})
