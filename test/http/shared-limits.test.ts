/**
 * Limits shared across instances (issue 12, item 3): with REKEY_REDIS_URL, three instances
 * count one client's per-address budget and its login backoff in the same Redis (a key prefix
 * of its own per run), so the client gets the same budget whichever instance it hits. Redis
 * down: limits fail open with a warning and a metric, never a 500.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { after, before, describe, test } from 'node:test'
import { Redis } from 'ioredis'
import { freePort } from '../multi-instance/cluster.ts'
import { credentials, testServer, type TestServer } from './support.ts'

const REDIS_URL = process.env.REKEY_TEST_REDIS_URL ?? ''
const skip = REDIS_URL === '' && process.env.CI !== 'true' ? 'REKEY_TEST_REDIS_URL is not set; shared-limit tests skipped' : false
const CLIENT = '192.0.2.44'

async function dropPrefix(prefix: string): Promise<void> {
  const redis = new Redis(REDIS_URL, { lazyConnect: true })
  await redis.connect()
  try {
    let cursor = '0'
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000)
      cursor = next
      if (keys.length > 0) await redis.del(...keys)
    } while (cursor !== '0')
  } finally {
    redis.disconnect()
  }
}

describe('limits shared through Redis by three instances', { skip }, () => {
  const prefix = `rekey-test-${randomBytes(6).toString('hex')}:`
  const servers: TestServer[] = []
  before(async () => {
    if (REDIS_URL === '') throw new Error('CI=true but REKEY_TEST_REDIS_URL is not set')
    for (let i = 0; i < 3; i++) {
      servers.push(await testServer({
        env: { REKEY_REDIS_URL: REDIS_URL, REKEY_REDIS_PREFIX: prefix },
        overrides: { 'rateLimit.loginPerIp': 6, 'rateLimit.loginPerAccount': 3 },
      }))
    }
  })
  after(async () => {
    await Promise.all(servers.map((s) => s.stop()))
    await dropPrefix(prefix)
  })

  const login = (i: number, body: unknown, remoteAddress = CLIENT) => servers[i % 3]!.app.inject({ method: 'POST', url: '/api/auth/login', payload: body as object, remoteAddress })

  test('the per-address login budget is one budget: 6 attempts spread over 3 instances, the 7th refused on every instance', async () => {
    const codes: number[] = []
    for (let i = 0; i < 6; i++) codes.push((await login(i, { email: `nobody${i}@example.test`, password: 'wrong password' })).statusCode)
    assert.deepEqual(codes, [401, 401, 401, 401, 401, 401])
    for (let i = 0; i < 3; i++) {
      const res = await login(i, { email: 'nobody@example.test', password: 'wrong password' })
      assert.equal(res.statusCode, 429, `instance ${i} refuses the 7th attempt`)
      assert.equal((res.json() as { error: string }).error, 'rate_limited')
    }
    // Another client is not affected.
    assert.equal((await login(1, { email: 'nobody@example.test', password: 'wrong password' }, '192.0.2.45')).statusCode, 401)
  })

  test('login backoff is shared: failures on one instance make the pair wait on the others; another address is not affected', async () => {
    const creds = credentials()
    for (const s of servers) assert.equal((await s.request('POST', '/api/auth/register', { body: creds })).statusCode, 201)
    const address = '192.0.2.50'
    for (let i = 0; i < 3; i++) assert.equal((await login(i, { ...creds, password: 'wrong password' }, address)).statusCode, 401)
    for (let i = 0; i < 3; i++) assert.equal((await login(i, creds, address)).statusCode, 429, `instance ${i} makes the pair wait`)
    for (let i = 0; i < 3; i++) assert.equal((await login(i, creds, `192.0.2.${60 + i}`)).statusCode, 200)
  })
})

describe('Redis down', { skip }, () => {
  test('limits fail open: logins work (never a 500), a warning is logged and rekey_limit_store_errors_total counts', async () => {
    const port = await freePort() // nothing listens there
    const server = await testServer({
      env: { REKEY_REDIS_URL: `redis://127.0.0.1:${port}`, REKEY_REDIS_PREFIX: 'rekey-test-down:', METRICS_AUTH_TOKEN: 'metrics-token-0123456789' },
      overrides: { 'rateLimit.loginPerIp': 2, 'rateLimit.loginPerAccount': 1 },
    })
    try {
      const creds = credentials()
      assert.equal((await server.request('POST', '/api/auth/register', { body: creds })).statusCode, 201)
      const codes: number[] = []
      for (let i = 0; i < 4; i++) codes.push((await server.request('POST', '/api/auth/login', { body: { ...creds, password: 'wrong password' } })).statusCode)
      assert.deepEqual(codes, [401, 401, 401, 401], 'no limit applies while Redis is down, and no 500')
      assert.equal((await server.request('POST', '/api/auth/login', { body: creds })).statusCode, 200)
      const metrics = await server.request('GET', '/metrics', { token: 'metrics-token-0123456789' })
      const counted = [...metrics.body.matchAll(/^rekey_limit_store_errors_total\{limit="([^"]+)"\} (\d+)/gm)]
      assert.ok(counted.some(([, limit, n]) => limit === 'login-backoff' && Number(n) > 0), metrics.body.split('\n').filter((l) => l.includes('limit_store')).join('\n'))
      assert.ok(counted.some(([, limit, n]) => limit === 'login-ip' && Number(n) > 0))
      assert.match(server.logs.text, /limits fail open/)
      assert.ok(!server.logs.text.includes('redis://'), 'the Redis URL is not logged')
    } finally {
      await server.stop()
    }
  })
})
