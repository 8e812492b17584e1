/**
 * Sessions end when they say they end (issue 12, item 6): dashboard sign-out ends the session
 * in the store, so a copied cookie stops working at once, on this instance and on another one
 * on the same store; login and refresh answers carry `Cache-Control: no-store`; logout ends
 * the session's access tokens too (they carry its `sid`).
 */
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { cookiePair, createAdmin } from './dashboard/support.ts'
import { signedIn, testServer, type TestServer } from './support.ts'

const HOST = 'rekey.test'
const ORIGIN = `http://${HOST}`

describe('sessions end when they say they end', () => {
  let a: TestServer
  let b: TestServer
  before(async () => {
    a = await testServer()
    // A second instance on the same SQLite store (change polling every 50 ms).
    b = await testServer({ env: { REKEY_STORE: join(a.dir, 'rekey.db') }, dir: a.dir })
  })
  after(async () => {
    await b.close()
    await a.stop()
  })

  test('dashboard sign-out: a copied cookie is refused at once here, and on the other instance within a signal', async () => {
    const email = 'ops-signout@example.test'
    const password = 'correct horse battery staple'
    await createAdmin(a, a.service.store, email, password)
    const signIn = await a.request('POST', '/admin/api/sign-in', { headers: { host: HOST, origin: ORIGIN }, body: { email, password } })
    assert.equal(signIn.statusCode, 200, signIn.body)
    const cookie = cookiePair(signIn.headers['set-cookie'])
    const { csrf } = signIn.json() as { csrf: string }
    const session = (server: TestServer) => server.request('GET', '/admin/api/session', { headers: { host: HOST, cookie } })
    assert.equal((await session(a)).statusCode, 200)
    assert.equal((await session(b)).statusCode, 200)
    const copy = cookie // what an attacker lifted from the browser

    const out = await a.request('POST', '/admin/api/sign-out', { headers: { host: HOST, origin: ORIGIN, cookie, 'x-csrf-token': csrf }, body: {} })
    assert.equal(out.statusCode, 204)
    const here = await a.request('GET', '/admin/api/session', { headers: { host: HOST, cookie: copy } })
    assert.equal(here.statusCode, 401, 'the copied cookie is refused at once on the instance that signed out')
    assert.match((here.json() as { message: string }).message, /session has ended/)
    const started = Date.now()
    while ((await session(b)).statusCode !== 401) {
      assert.ok(Date.now() - started < 2000, 'refused on the other instance within 2 s')
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
    assert.equal((await a.request('GET', '/api/admin/keys', { headers: { host: HOST, cookie: copy } })).statusCode, 401, 'the admin API refuses it too')
  })

  test('login and refresh answers carry Cache-Control: no-store', async () => {
    const user = await signedIn(a)
    const login = await a.request('POST', '/api/auth/login', { body: { email: user.email, password: user.password } })
    assert.equal(login.statusCode, 200)
    assert.equal(login.headers['cache-control'], 'no-store')
    assert.equal(login.headers.pragma, 'no-cache')
    const refresh = await a.request('POST', '/api/auth/refresh', { body: { refreshToken: user.refreshToken } })
    assert.equal(refresh.statusCode, 200)
    assert.equal(refresh.headers['cache-control'], 'no-store')
    const refused = await a.request('POST', '/api/auth/refresh', { body: { refreshToken: 'x.y.z' } })
    assert.equal(refused.headers['cache-control'], 'no-store', 'failures too')
  })

  test('logout ends the session\'s access tokens as well, on both instances; other sessions stay', async () => {
    const user = await signedIn(a)
    const other = (await a.request('POST', '/api/auth/login', { body: { email: user.email, password: user.password } })).json() as { accessToken: string }
    assert.equal((await b.request('GET', '/api/auth/me', { token: user.accessToken })).statusCode, 200)
    assert.equal((await a.request('POST', '/api/auth/logout', { body: { refreshToken: user.refreshToken } })).statusCode, 204)
    assert.equal((await a.request('GET', '/api/auth/me', { token: user.accessToken })).statusCode, 401)
    const started = Date.now()
    while ((await b.request('GET', '/api/auth/me', { token: user.accessToken })).statusCode !== 401) {
      assert.ok(Date.now() - started < 2000, 'refused on the other instance within 2 s')
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
    assert.equal((await b.request('GET', '/api/auth/me', { token: other.accessToken })).statusCode, 200)
  })
})
