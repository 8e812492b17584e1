/**
 * Passwords and people (issue 12, item 9): `POST /api/auth/password` changes a password and
 * ends the user's other sessions; `rekey users force-reset` (the real CLI process, on the
 * server's own SQLite store) marks accounts so their next login can only set a new password,
 * and records it in the audit log.
 */
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { runBin, runCli } from '../cli/helpers.ts'
import { createAdmin } from './dashboard/support.ts'
import { signedIn, testServer, type TestServer } from './support.ts'

async function until(fn: () => Promise<boolean>, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms
  while (!await fn()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

describe('POST /api/auth/password', () => {
  let server: TestServer
  before(async () => { server = await testServer() })
  after(async () => { await server.stop() })

  test('204; this session keeps working, the user\'s other sessions end at once; the new password logs in, the old one does not', async () => {
    const user = await signedIn(server)
    const other = (await server.request('POST', '/api/auth/login', { body: { email: user.email, password: user.password } })).json() as { accessToken: string, refreshToken: string }
    const stranger = await signedIn(server)
    const newPassword = 'a brand new password 42'
    const res = await server.request('POST', '/api/auth/password', { token: user.accessToken, body: { currentPassword: user.password, newPassword } })
    assert.equal(res.statusCode, 204, res.body)
    assert.equal(res.headers['cache-control'], 'no-store')
    assert.equal((await server.request('GET', '/api/auth/me', { token: user.accessToken })).statusCode, 200, 'the session that changed it stays')
    const otherMe = await server.request('GET', '/api/auth/me', { token: other.accessToken })
    assert.equal(otherMe.statusCode, 401, 'the other session\'s access token is refused at once')
    assert.equal((otherMe.json() as { error: string }).error, 'ERR_TOKEN_REVOKED')
    assert.equal((await server.request('POST', '/api/auth/refresh', { body: { refreshToken: other.refreshToken } })).statusCode, 401)
    assert.equal((await server.request('POST', '/api/auth/refresh', { body: { refreshToken: user.refreshToken } })).statusCode, 200)
    assert.equal((await server.request('GET', '/api/auth/me', { token: stranger.accessToken })).statusCode, 200, 'other users are untouched')
    assert.equal((await server.request('POST', '/api/auth/login', { body: { email: user.email, password: user.password } })).statusCode, 401)
    assert.equal((await server.request('POST', '/api/auth/login', { body: { email: user.email, password: newPassword } })).statusCode, 200)
    const row = (await server.service.store.listAudit()).at(-1)
    assert.equal(row?.method, 'password-change')
    assert.ok(!row?.notes.includes(newPassword) && !row?.notes.includes(user.password))
  })

  test('a wrong current password is 401 invalid_credentials; the same password twice, a short one or no token are refused', async () => {
    const user = await signedIn(server)
    const wrong = await server.request('POST', '/api/auth/password', { token: user.accessToken, body: { currentPassword: 'not my password', newPassword: 'another new password' } })
    assert.equal(wrong.statusCode, 401)
    assert.equal((wrong.json() as { error: string }).error, 'invalid_credentials')
    const same = await server.request('POST', '/api/auth/password', { token: user.accessToken, body: { currentPassword: user.password, newPassword: user.password } })
    assert.equal(same.statusCode, 400)
    const short = await server.request('POST', '/api/auth/password', { token: user.accessToken, body: { currentPassword: user.password, newPassword: 'short' } })
    assert.equal(short.statusCode, 400)
    const none = await server.request('POST', '/api/auth/password', { body: { currentPassword: user.password, newPassword: 'another new password' } })
    assert.equal(none.statusCode, 401)
    assert.equal((await server.request('POST', '/api/auth/password', { token: user.refreshToken, body: { currentPassword: user.password, newPassword: 'another new password' } })).statusCode, 401, 'a refresh token is not a Bearer for this route')
    assert.equal((await server.request('POST', '/api/auth/login', { body: { email: user.email, password: user.password } })).statusCode, 200, 'the password is unchanged')
  })
})

describe('rekey users force-reset', () => {
  let server: TestServer
  let env: Record<string, string>
  before(async () => {
    server = await testServer()
    env = { REKEY_STORE: join(server.dir, 'rekey.db') }
  })
  after(async () => { await server.stop() })

  test('--email: sessions end, the next login answers 403 with a password-change token that can only set a new password; audited', async () => {
    const user = await signedIn(server)
    const bystander = await signedIn(server)
    const run = await runBin(['--operator', 'alice', 'users', 'force-reset', '--email', user.email.toUpperCase()], { cwd: server.dir, env })
    assert.equal(run.code, 0, run.stderr)
    assert.match(run.stdout, /1 user must set a new password at next login; 1 session ended/)
    await until(async () => (await server.request('GET', '/api/auth/me', { token: user.accessToken })).statusCode === 401, 3000, 'the access token refused')
    assert.equal((await server.request('POST', '/api/auth/refresh', { body: { refreshToken: user.refreshToken } })).statusCode, 401)
    assert.equal((await server.request('GET', '/api/auth/me', { token: bystander.accessToken })).statusCode, 200)
    const audit = (await server.service.store.listAudit()).find((row) => row.method === 'force-reset')
    assert.equal(audit?.operator, 'alice')
    assert.ok(audit?.notes.includes(user.email))

    const login = await server.request('POST', '/api/auth/login', { body: { email: user.email, password: user.password } })
    assert.equal(login.statusCode, 403)
    const body = login.json() as { error: string, message: string, passwordChangeToken: string, expiresIn: number }
    assert.equal(body.error, 'password_change_required')
    assert.equal(body.expiresIn, 600)
    assert.equal((await server.request('POST', '/api/auth/login', { body: { email: user.email, password: 'wrong password' } })).statusCode, 401, 'a wrong password still gets the plain 401')
    // The token opens nothing else: not /me, not refresh.
    assert.equal((await server.request('GET', '/api/auth/me', { token: body.passwordChangeToken })).statusCode, 401)
    assert.equal((await server.request('POST', '/api/auth/refresh', { body: { refreshToken: body.passwordChangeToken } })).statusCode, 401)
    const newPassword = 'the reset password 123'
    const change = await server.request('POST', '/api/auth/password', { token: body.passwordChangeToken, body: { currentPassword: user.password, newPassword } })
    assert.equal(change.statusCode, 204, change.body)
    const again = await server.request('POST', '/api/auth/password', { token: body.passwordChangeToken, body: { currentPassword: newPassword, newPassword: 'yet another password' } })
    assert.equal(again.statusCode, 401, 'the password-change token works once')
    assert.equal((await server.request('POST', '/api/auth/login', { body: { email: user.email, password: user.password } })).statusCode, 401)
    assert.equal((await server.request('POST', '/api/auth/login', { body: { email: user.email, password: newPassword } })).statusCode, 200)
    assert.equal((await server.service.store.listAudit()).at(-1)?.method, 'password-reset')
  })

  test('--all marks every user; an admin cannot sign in to the dashboard until the password is set; bad usage exits 2', async () => {
    const admin = 'ops-reset@example.test'
    const password = 'correct horse battery staple'
    await createAdmin(server, server.service.store, admin, password)
    const user = await signedIn(server)
    const run = await runBin(['users', 'force-reset', '--all', '--json'], { cwd: server.dir, env })
    assert.equal(run.code, 0, run.stderr)
    const report = JSON.parse(run.stdout) as { users: number, sessionsEnded: number }
    assert.ok(report.users >= 2)
    assert.equal((await server.request('POST', '/api/auth/login', { body: { email: user.email, password: user.password } })).statusCode, 403)
    await until(async () => (await server.request('POST', '/admin/api/sign-in', { headers: { host: 'rekey.test', origin: 'http://rekey.test' }, body: { email: admin, password } })).statusCode === 403, 3000, 'dashboard sign-in refused')

    for (const argv of [['users', 'force-reset'], ['users', 'force-reset', '--all', '--email', admin], ['users', 'force-reset', '--email', 'nobody@example.test'], ['users', 'force-reset', '--email', 'not an email']]) {
      // In process: the exit codes of bad usage need no separate process each.
      const bad = await runCli(argv, env)
      assert.equal(bad.code, 2, `${argv.join(' ')}: ${bad.stderr}`)
      assert.match(bad.stderr, /^rekey: /)
    }
  })
})
