/**
 * The dashboard over HTTP (inject): the page and its headers, sign-in for admins only, the
 * sealed session cookie and its flags, CSRF and Origin checks on every state-changing call,
 * the role and token version re-checked per request, sign-out, and the admin routes the page
 * adds (audit chain verification, a manual rotation record). Bearer auth is unchanged.
 */
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import { after, before, describe, test } from 'node:test'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { DASHBOARD_CSP } from '../../../src/http/dashboard/routes.ts'
import { DashboardSessions } from '../../../src/http/dashboard/session.ts'
import type { RevocationCache } from '../../../src/service/auth/revocations.ts'
import { signedIn, testServer, type TestServer } from '../support.ts'
import { cookiePair, createAdmin } from './support.ts'

const HOST = 'rekey.test'
const ORIGIN = `http://${HOST}`
const email = 'ops@example.test'
const password = 'correct horse battery staple'

describe('dashboard session, CSRF and headers', () => {
  let server: TestServer
  let adminId: string
  const call = (method: string, url: string, opts: { cookie?: string, csrf?: string, origin?: string | null, body?: unknown, headers?: Record<string, string> } = {}) => {
    const headers: Record<string, string> = { host: HOST, ...opts.headers }
    if (opts.cookie !== undefined) headers.cookie = opts.cookie
    if (opts.csrf !== undefined) headers['x-csrf-token'] = opts.csrf
    if (opts.origin !== null) headers.origin = opts.origin ?? ORIGIN
    return server.request(method, url, { headers, ...(opts.body === undefined ? {} : { body: opts.body }) })
  }
  const signIn = async (who = email, pw = password) => {
    const res = await call('POST', '/admin/api/sign-in', { body: { email: who, password: pw } })
    assert.equal(res.statusCode, 200, res.body)
    return { cookie: cookiePair(res.headers['set-cookie']), csrf: (res.json() as { csrf: string }).csrf, setCookie: String(res.headers['set-cookie']) }
  }

  before(async () => {
    server = await testServer({ overrides: { trustProxy: true } })
    adminId = await createAdmin(server, server.service.store, email, password)
  })
  after(async () => { await server.stop() })

  test('the page: CSP without inline script, no framing, no-store; assets served with their types', async () => {
    const page = await call('GET', '/admin', { origin: null })
    assert.equal(page.statusCode, 200)
    assert.match(String(page.headers['content-type']), /^text\/html/)
    assert.equal(page.headers['content-security-policy'], DASHBOARD_CSP)
    assert.match(DASHBOARD_CSP, /default-src 'self'/)
    assert.match(DASHBOARD_CSP, /frame-ancestors 'none'/)
    assert.doesNotMatch(DASHBOARD_CSP, /unsafe-inline|unsafe-eval/)
    assert.equal(page.headers['x-frame-options'], 'DENY')
    assert.equal(page.headers['cache-control'], 'no-store')
    // Every script is an external file of this origin: the CSP would block an inline one anyway.
    assert.deepEqual([...page.body.matchAll(/<script\b([^>]*)>([\s\S]*?)<\/script>/g)].map((m) => [m[1]?.includes('src="/admin/app.js"'), m[2]]), [[true, '']])
    assert.doesNotMatch(page.body, /https?:\/\//, 'no external resource')
    const js = await call('GET', '/admin/app.js', { origin: null })
    assert.equal(js.statusCode, 200)
    assert.match(String(js.headers['content-type']), /^text\/javascript/)
    const css = await call('GET', '/admin/app.css', { origin: null })
    assert.match(String(css.headers['content-type']), /^text\/css/)
    const again = await call('GET', '/admin/app.css', { origin: null, headers: { 'if-none-match': String(css.headers.etag) } })
    assert.equal(again.statusCode, 304)
    assert.equal((await call('GET', '/admin/app.ts', { origin: null })).statusCode, 404)
  })

  test('sign-in: one 401 for unknown user, wrong password and non-admin; the admin gets a sealed, HttpOnly, SameSite=Strict cookie', async () => {
    const user = await signedIn(server)
    const refusals = await Promise.all([
      call('POST', '/admin/api/sign-in', { body: { email: 'nobody@example.test', password } }),
      call('POST', '/admin/api/sign-in', { body: { email, password: 'wrong password' } }),
      call('POST', '/admin/api/sign-in', { body: { email: user.email, password: user.password } }),
    ])
    for (const r of refusals) {
      assert.equal(r.statusCode, 401)
      assert.deepEqual(r.json(), { error: 'invalid_credentials', message: 'Invalid email or password' })
      assert.equal(r.headers['set-cookie'], undefined)
    }
    const { cookie, csrf, setCookie } = await signIn()
    assert.match(setCookie, /^rekey_admin=v1\.[\w-]+\.[\w-]+\.[\w-]+; Path=\/; Max-Age=28800; HttpOnly; SameSite=Strict$/)
    assert.doesNotMatch(cookie, new RegExp(`${adminId}|ops|${csrf}`), 'the cookie reveals nothing')
    const session = await call('GET', '/admin/api/session', { cookie, origin: null })
    assert.equal(session.statusCode, 200)
    assert.equal(session.headers['cache-control'], 'no-store')
    const body = session.json() as { email: string, csrf: string, expiresAt: string }
    assert.deepEqual([body.email, body.csrf], [email, csrf])
    assert.ok(Math.abs(Date.parse(body.expiresAt) - Date.now() - 8 * 3600_000) < 60_000)
  })

  test('Secure when the request came over TLS (X-Forwarded-Proto from a trusted proxy)', async () => {
    const res = await call('POST', '/admin/api/sign-in', { body: { email, password }, origin: `https://${HOST}`, headers: { 'x-forwarded-proto': 'https' } })
    assert.equal(res.statusCode, 200, res.body)
    assert.match(String(res.headers['set-cookie']), /; HttpOnly; SameSite=Strict; Secure$/)
  })

  test('sign-in from another origin is refused', async () => {
    const res = await call('POST', '/admin/api/sign-in', { body: { email, password }, origin: 'https://evil.example' })
    assert.equal(res.statusCode, 403)
    assert.equal(res.headers['set-cookie'], undefined)
  })

  test('CSRF: a POST with the cookie but no token, a wrong token, or a foreign Origin is 403 and changes nothing', async () => {
    const { cookie, csrf } = await signIn()
    const version = (await server.service.store.getKeyset()).version
    const attempts = [
      await call('POST', '/api/admin/rotate', { cookie, body: { secret: 'access' } }),
      await call('POST', '/api/admin/rotate', { cookie, csrf: `${csrf.slice(0, -2)}xx`, body: { secret: 'access' } }),
      await call('POST', '/api/admin/rotate', { cookie, csrf: '', body: { secret: 'access' } }),
      await call('POST', '/api/admin/rotate', { cookie, csrf, origin: 'https://evil.example', body: { secret: 'access' } }),
      await call('POST', '/api/admin/rotate', { cookie, csrf, origin: null, body: { secret: 'access' } }),
    ]
    for (const res of attempts) {
      assert.equal(res.statusCode, 403, res.body)
      assert.equal((res.json() as { error: string }).error, 'forbidden')
    }
    assert.match(attempts[0]?.body ?? '', /CSRF token is missing or wrong/)
    assert.match(attempts[3]?.body ?? '', /Cross-origin request refused/)
    assert.equal((await server.service.store.getKeyset()).version, version, 'nothing changed')
    // Another session's token does not fit this session.
    const other = await signIn()
    const crossed = await call('POST', '/api/admin/rotate', { cookie, csrf: other.csrf, body: { secret: 'access' } })
    assert.equal(crossed.statusCode, 403)

    const ok = await call('POST', '/api/admin/rotate', { cookie, csrf, body: { secret: 'access' } })
    assert.equal(ok.statusCode, 200, ok.body)
    assert.equal(ok.headers['cache-control'], 'no-store')
    const rows = await server.service.store.listAudit()
    assert.deepEqual(rows.slice(-2).map((r) => [r.method, r.operator]), [['rotate-stage', email], ['rotate', email]])
    // Reads need the cookie only.
    const status = await call('GET', '/api/admin/status', { cookie, origin: null })
    assert.equal(status.statusCode, 200)
  })

  test('a tampered or malformed cookie is 401; no cookie keeps the Bearer answer', async () => {
    const { cookie } = await signIn()
    const value = cookie.slice('rekey_admin='.length)
    const [v, iv, ct, tag] = value.split('.') as [string, string, string, string]
    const flipped = `${v}.${iv}.${ct.slice(0, -1)}${ct.endsWith('A') ? 'B' : 'A'}.${tag}`
    for (const bad of [`rekey_admin=${flipped}`, 'rekey_admin=garbage', 'rekey_admin=']) {
      const res = await call('GET', '/api/admin/status', { cookie: bad, origin: null })
      assert.equal(res.statusCode, 401, bad)
    }
    const none = await call('GET', '/api/admin/status', { origin: null })
    assert.equal(none.statusCode, 401)
    assert.deepEqual(none.json(), { error: 'unauthorized', message: 'A Bearer token is required' })
    assert.equal(none.headers['www-authenticate'], 'Bearer realm="rekey"')
  })

  test('non-admin: demoted after sign-in is 403; a bumped token version (logout-all) ends the session', async () => {
    const second = 'second@example.test'
    const id = await createAdmin(server, server.service.store, second, password)
    const { cookie } = await signIn(second)
    assert.equal((await call('GET', '/api/admin/keys', { cookie, origin: null })).statusCode, 200)
    await server.service.store.setRole(id, 'user')
    server.service.revocations.invalidateUsers()
    const demoted = await call('GET', '/api/admin/keys', { cookie, origin: null })
    assert.equal(demoted.statusCode, 403)
    assert.equal((await call('GET', '/admin/api/session', { cookie, origin: null })).statusCode, 403)

    await server.service.store.setRole(id, 'admin')
    const fresh = await signIn(second)
    await server.service.auth.logoutAll(id)
    const revoked = await call('GET', '/api/admin/keys', { cookie: fresh.cookie, origin: null })
    assert.equal(revoked.statusCode, 401)
  })

  test('sign-out needs the CSRF token, then clears the cookie', async () => {
    const { cookie, csrf } = await signIn()
    const forged = await call('POST', '/admin/api/sign-out', { cookie, body: {} })
    assert.equal(forged.statusCode, 403)
    const out = await call('POST', '/admin/api/sign-out', { cookie, csrf, body: {} })
    assert.equal(out.statusCode, 204)
    assert.match(String(out.headers['set-cookie']), /^rekey_admin=; Path=\/; Max-Age=0; HttpOnly; SameSite=Strict$/)
    // Without a session there is nothing to protect: the cookie is just cleared.
    const stale = await call('POST', '/admin/api/sign-out', { cookie: 'rekey_admin=garbage', body: {} })
    assert.equal(stale.statusCode, 204)
  })

  test('audit chain verification and a manual rotation record, through the admin API', async () => {
    const { cookie, csrf } = await signIn()
    const recorded = await call('POST', '/api/admin/record', { cookie, csrf, body: { name: 'SMTP_PASSWORD', notes: 'rotated in the console, OPS-1' } })
    assert.equal(recorded.statusCode, 200, recorded.body)
    const r = recorded.json() as { secret: string, kind: string, method: string, audit: { seq: number } }
    assert.deepEqual([r.secret, r.kind, r.method], ['SMTP_PASSWORD', 'smtp', 'manual'])
    const row = (await server.service.store.listAudit()).at(-1)
    assert.deepEqual([row?.seq, row?.secret, row?.operator, row?.method], [r.audit.seq, 'SMTP_PASSWORD', email, 'manual'])
    assert.equal((await server.service.store.getSecret('SMTP_PASSWORD'))?.lastMethod, 'manual')
    const badName = await call('POST', '/api/admin/record', { cookie, csrf, body: { name: 'not a name' } })
    assert.equal(badName.statusCode, 400)

    const verify = await call('GET', '/api/admin/audit/verify', { cookie, origin: null })
    assert.equal(verify.statusCode, 200)
    const report = verify.json() as { ok: boolean, rows: number, head: { seq: number } }
    assert.equal(report.ok, true)
    assert.equal(report.head.seq, r.audit.seq)
    // An edited row breaks the chain, and the dashboard's endpoint says where.
    const db = new DatabaseSync(join(server.dir, 'rekey.db'))
    try {
      db.exec("UPDATE audit_events SET notes = 'routine' WHERE seq = 1")
    } finally {
      db.close()
    }
    const broken = (await call('GET', '/api/admin/audit/verify', { cookie, origin: null })).json() as { ok: boolean, firstBad: { seq: number, reason: string } }
    assert.deepEqual([broken.ok, broken.firstBad.seq], [false, 1])
    assert.match(broken.firstBad.reason, /content does not match its hash/)
  })

  test('emergency through the dashboard session: audited with the admin, and it ends the dashboard session too', async () => {
    const { cookie, csrf } = await signIn()
    // The test server's clock stands still; bring it past the sign-in, as real time would be.
    server.clock.advance(Date.now() - server.clock.now() + 2000)
    const res = await call('POST', '/api/admin/emergency', { cookie, csrf, body: { secret: 'all', reason: 'drill from the dashboard' } })
    assert.equal(res.statusCode, 200, res.body)
    const row = (await server.service.store.listAudit()).at(-1)
    assert.deepEqual([row?.method, row?.operator], ['emergency', email])
    const after = await call('GET', '/admin/api/session', { cookie, origin: null })
    assert.equal(after.statusCode, 401)
    assert.match((after.json() as { message: string }).message, /emergency/)
  })
})

describe('dashboard sign-in is rate-limited like login', () => {
  let server: TestServer
  before(async () => { server = await testServer({ overrides: { 'rateLimit.loginPerAccount': 3 } }) })
  after(async () => { await server.stop() })

  test('429 after the per-account budget', async () => {
    const codes: number[] = []
    for (let i = 0; i < 4; i++) {
      const res = await server.request('POST', '/admin/api/sign-in', { headers: { host: HOST, origin: ORIGIN }, body: { email, password: 'wrong password' } })
      codes.push(res.statusCode)
    }
    assert.deepEqual(codes, [401, 401, 401, 429])
  })
})

describe('DashboardSessions', () => {
  test('a session expires after its lifetime; a cookie sealed under another key does not open', async () => {
    let now = Date.UTC(2026, 0, 1)
    const user = { id: 'u1', email: 'a@example.test', role: 'admin' as const, tokenVersion: 0 }
    const revocations = { notBefore: 0, isSessionEnded: () => false, peek: () => user, getUser: async () => user } as unknown as RevocationCache
    const sessions = new DashboardSessions({ key: Buffer.alloc(32, 1), revocations, ttlSeconds: 60, now: () => now })
    const other = new DashboardSessions({ key: Buffer.alloc(32, 2), revocations, now: () => now })
    let setCookie = ''
    const reply = { header: (_name: string, value: string) => { setCookie = value; return reply } } as unknown as FastifyReply
    const request = (cookie: string) => ({ headers: { cookie }, protocol: 'http', host: HOST }) as unknown as FastifyRequest
    sessions.start(user, 's1', request(''), reply)
    const cookie = setCookie.split(';')[0] as string
    assert.equal((await sessions.authenticate(request(cookie), { mutating: false })).user.id, 'u1')
    await assert.rejects(other.authenticate(request(cookie), { mutating: false }), /session is invalid/)
    now += 60_000
    await assert.rejects(sessions.authenticate(request(cookie), { mutating: false }), (err: Error & { status?: number }) => err.status === 401 && /expired/.test(err.message))
  })
})
