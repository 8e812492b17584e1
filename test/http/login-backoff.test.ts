/**
 * Strangers cannot lock a user out (issue 12, item 1): failed logins are counted per
 * (account, client address) with exponential backoff. 50 wrong passwords from one address do
 * not stop the right password from another address, for login and the dashboard sign-in;
 * the first address stays throttled. The clock is frozen and moved by hand.
 */
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { createAdmin, cookiePair } from './dashboard/support.ts'
import { credentials, testServer, type TestServer } from './support.ts'

const HOST = 'rekey.test'
const ORIGIN = `http://${HOST}`
const ATTACKER = '203.0.113.7'
const OWNER = '198.51.100.20'

describe('login backoff per (account, address)', () => {
  let server: TestServer
  before(async () => { server = await testServer({ overrides: { 'rateLimit.loginPerAccount': 5 } }) })
  after(async () => { await server.stop() })

  const login = (body: unknown, remoteAddress: string) => server.app.inject({ method: 'POST', url: '/api/auth/login', payload: body as object, remoteAddress })
  const signIn = (body: unknown, remoteAddress: string) => server.app.inject({
    method: 'POST', url: '/admin/api/sign-in', payload: body as object, remoteAddress, headers: { host: HOST, origin: ORIGIN },
  })

  test('login: 50 wrong passwords from one address; the right password from another logs in at once; the first stays throttled', async () => {
    const creds = credentials()
    assert.equal((await server.request('POST', '/api/auth/register', { body: creds })).statusCode, 201)
    const codes: number[] = []
    for (let i = 0; i < 50; i++) codes.push((await login({ ...creds, password: 'wrong password' }, ATTACKER)).statusCode)
    assert.deepEqual(codes.slice(0, 5), [401, 401, 401, 401, 401], 'the first 5 failures are answered 401')
    assert.ok(codes.slice(5).every((c) => c === 429), `then the address waits: ${codes.join(',')}`)

    const owner = await login(creds, OWNER)
    assert.equal(owner.statusCode, 200, 'the owner, from an address without failures, logs in at once')
    assert.equal(owner.headers['cache-control'], 'no-store')

    const stillThrottled = await login(creds, ATTACKER)
    assert.equal(stillThrottled.statusCode, 429, 'the attacking address stays throttled, even with the right password')
    assert.equal((stillThrottled.json() as { error: string }).error, 'rate_limited')
    assert.match(String(stillThrottled.headers['retry-after']), /^\d+$/)
    // The audit log names the account and the address, once per lock.
    const locks = (await server.service.store.listAudit()).filter((row) => row.method === 'login-lock' && row.notes.includes(creds.email))
    assert.equal(locks.length, 1)
    assert.ok(locks[0]?.notes.includes(ATTACKER))
  })

  test('the wait doubles with each failure after it ends, and a success clears the count', async () => {
    const creds = credentials()
    assert.equal((await server.request('POST', '/api/auth/register', { body: creds })).statusCode, 201)
    const wrong = { ...creds, password: 'wrong password' }
    for (let i = 0; i < 5; i++) assert.equal((await login(wrong, ATTACKER)).statusCode, 401)
    const first = await login(wrong, ATTACKER)
    assert.equal(first.statusCode, 429)
    assert.equal(first.headers['retry-after'], '1')
    server.clock.advance(1000)
    assert.equal((await login(wrong, ATTACKER)).statusCode, 401, 'after the wait the address may try again')
    assert.equal((await login(wrong, ATTACKER)).headers['retry-after'], '2')
    server.clock.advance(2000)
    assert.equal((await login(wrong, ATTACKER)).statusCode, 401)
    assert.equal((await login(wrong, ATTACKER)).headers['retry-after'], '4')
    server.clock.advance(4000)
    assert.equal((await login(creds, ATTACKER)).statusCode, 200, 'the right password after the wait logs in')
    assert.equal((await login(wrong, ATTACKER)).statusCode, 401, 'and the count starts again')
  })

  test('dashboard sign-in: the same backoff; the admin signs in from another address during the attack', async () => {
    const email = 'ops-backoff@example.test'
    const password = 'correct horse battery staple'
    await createAdmin(server, server.service.store, email, password)
    const codes: number[] = []
    for (let i = 0; i < 50; i++) codes.push((await signIn({ email, password: 'wrong password' }, ATTACKER)).statusCode)
    assert.deepEqual(codes.slice(0, 5), [401, 401, 401, 401, 401])
    assert.ok(codes.slice(5).every((c) => c === 429), codes.join(','))
    const owner = await signIn({ email, password }, OWNER)
    assert.equal(owner.statusCode, 200)
    assert.notEqual(cookiePair(owner.headers['set-cookie']), '')
    assert.equal((await signIn({ email, password }, ATTACKER)).statusCode, 429)
  })

  test('a throttled attempt spends no password verification', async () => {
    const creds = credentials()
    assert.equal((await server.request('POST', '/api/auth/register', { body: creds })).statusCode, 201)
    for (let i = 0; i < 5; i++) await login({ ...creds, password: 'wrong password' }, ATTACKER)
    const metrics = server.service.metrics.logins
    const before = (await metrics.get()).values.find((v) => v.labels.result === 'throttled')?.value ?? 0
    assert.equal((await login(creds, ATTACKER)).statusCode, 429)
    const afterCount = (await metrics.get()).values.find((v) => v.labels.result === 'throttled')?.value ?? 0
    assert.equal(afterCount, before + 1)
  })
})
