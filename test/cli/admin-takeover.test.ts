/**
 * Admin accounts cannot be taken over: against a real `rekey serve` process on a real SQLite
 * store, someone registers the operator's admin email first (registration is open, emails are
 * not verified); `rekey admin create` then refuses, `--promote-existing` makes it admin with
 * the operator's password and ends everything the registrant held, and `rekey admin remove`
 * takes the rights away again and ends the admin's sessions.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'
import { FAST_ENV, me, post, signUp, startServe, until, type ServeProc } from '../multi-instance/cluster.ts'
import { runCli } from './helpers.ts'

const OPS = 'ops@example.test'
const OPERATOR_PASSWORD = 'the-operators-own-password-7'
const MALLORY_PASSWORD = 'mallory-registered-first-1'

describe('rekey admin create / remove', () => {
  let server: ServeProc
  let env: Record<string, string>
  let storePath: string
  let dir: string
  const cli = (args: string[], extra: Record<string, string> = {}): ReturnType<typeof runCli> => runCli(['--store', storePath, ...args], { ...env, ...extra })

  before(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'rekey-admin-'))
    storePath = path.join(dir, 'rekey.db')
    env = { ...FAST_ENV, REKEY_MASTER_KEY: randomBytes(32).toString('base64') }
    server = await startServe({ cwd: dir, env: { ...env, REKEY_STORE: storePath } })
  })
  after(async () => {
    await server?.stop()
    rmSync(dir, { recursive: true, force: true })
  })

  test('an account registered under the admin email is not promoted silently; --promote-existing sets the operator\'s password and ends the registrant\'s sessions and tokens', async () => {
    const mallory = await signUp(server.url, { email: OPS, password: MALLORY_PASSWORD })

    const refused = await cli(['admin', 'create', '--email', OPS, '--password-env', 'ADMIN_PW'], { ADMIN_PW: OPERATOR_PASSWORD })
    assert.equal(refused.code, 1)
    assert.match(refused.stderr, /^rekey: ERR_CONFLICT: a user ops@example\.test already exists and is not an admin .*nothing was changed\. Add --promote-existing/)
    assert.equal((await (await me(server.url, mallory.accessToken)).json() as { role: string }).role, 'user', 'still not an admin')
    assert.equal((await post(`${server.url}/api/auth/login`, { email: OPS, password: OPERATOR_PASSWORD })).status, 401, 'the operator\'s password was not set')

    const promoted = await cli(['--json', 'admin', 'create', '--email', OPS, '--password-env', 'ADMIN_PW', '--promote-existing'], { ADMIN_PW: OPERATOR_PASSWORD })
    assert.equal(promoted.code, 0, promoted.stderr)
    const report = JSON.parse(promoted.stdout) as { action: string, sessionsEnded: number, role: string }
    assert.deepEqual({ action: report.action, sessionsEnded: report.sessionsEnded, role: report.role }, { action: 'promoted', sessionsEnded: 1, role: 'admin' })
    assert.ok(!promoted.stdout.includes(OPERATOR_PASSWORD) && !promoted.stderr.includes(OPERATOR_PASSWORD))

    // Everything Mallory held is dead: her access token (once the instance sees the change), her refresh token, her password.
    await until(async () => (await me(server.url, mallory.accessToken)).status === 401, 5000, 'the old access token to be refused')
    assert.equal((await post(`${server.url}/api/auth/refresh`, { refreshToken: mallory.refreshToken })).status, 401)
    assert.equal((await post(`${server.url}/api/auth/login`, { email: OPS, password: MALLORY_PASSWORD })).status, 401)
    const login = await post(`${server.url}/api/auth/login`, { email: OPS, password: OPERATOR_PASSWORD })
    assert.equal(login.status, 200)
    const { accessToken } = await login.json() as { accessToken: string }
    assert.equal((await (await me(server.url, accessToken)).json() as { role: string }).role, 'admin')
    assert.equal((await fetch(`${server.url}/api/admin/keys`, { headers: { authorization: `Bearer ${accessToken}` } })).status, 200)

    // Re-running the same create with the same password is a no-op; another password is refused.
    const again = await cli(['admin', 'create', '--email', OPS, '--password-env', 'ADMIN_PW'], { ADMIN_PW: OPERATOR_PASSWORD })
    assert.equal(again.code, 0, again.stderr)
    assert.match(again.stdout, /already an admin with this password; nothing changed/)
    const other = await cli(['admin', 'create', '--email', OPS, '--password-env', 'ADMIN_PW'], { ADMIN_PW: 'yet-another-password-9' })
    assert.equal(other.code, 1)
    assert.match(other.stderr, /ERR_CONFLICT: ops@example\.test is already an admin with another password/)
    assert.equal((await (await me(server.url, accessToken)).json() as { role: string }).role, 'admin', 'the refused create ended nothing')

    const audit = await cli(['audit'])
    assert.equal(audit.code, 0, audit.stderr)
    assert.match(audit.stdout, /admin-promote/)
    assert.doesNotMatch(audit.stdout, new RegExp(`${OPERATOR_PASSWORD}|${MALLORY_PASSWORD}`))
  })

  test('a new email is created as admin; admin remove takes the rights away and ends its sessions; unknown emails are bad usage', async () => {
    const email = `admin-${randomBytes(4).toString('hex')}@example.test`
    const created = await cli(['admin', 'create', '--email', email, '--password-env', 'ADMIN_PW'], { ADMIN_PW: OPERATOR_PASSWORD })
    assert.equal(created.code, 0, created.stderr)
    assert.match(created.stdout, /^created admin /)
    const login = await post(`${server.url}/api/auth/login`, { email, password: OPERATOR_PASSWORD })
    const tokens = await login.json() as { accessToken: string, refreshToken: string }
    assert.equal((await fetch(`${server.url}/api/admin/keys`, { headers: { authorization: `Bearer ${tokens.accessToken}` } })).status, 200)

    const removed = await cli(['admin', 'remove', '--email', email])
    assert.equal(removed.code, 0, removed.stderr)
    assert.match(removed.stdout, /is no longer an admin; 1 session\(s\) and every token it held were ended/)
    await until(async () => (await me(server.url, tokens.accessToken)).status === 401, 5000, 'the admin\'s access token to be refused')
    assert.equal((await post(`${server.url}/api/auth/refresh`, { refreshToken: tokens.refreshToken })).status, 401)
    // The password still logs in, as a plain user without the admin API.
    const relogin = await post(`${server.url}/api/auth/login`, { email, password: OPERATOR_PASSWORD })
    assert.equal(relogin.status, 200)
    const fresh = (await relogin.json() as { accessToken: string }).accessToken
    assert.equal((await fetch(`${server.url}/api/admin/keys`, { headers: { authorization: `Bearer ${fresh}` } })).status, 403)

    const twice = await cli(['admin', 'remove', '--email', email])
    assert.equal(twice.code, 0)
    assert.match(twice.stdout, /is not an admin; nothing changed/)
    const unknown = await cli(['admin', 'remove', '--email', 'nobody@example.test'])
    assert.equal(unknown.code, 2)
    assert.match(unknown.stderr, /no user has the email nobody@example\.test/)
  })

  test('an email with a control character (NUL, DEL) is bad usage: nothing is created', async () => {
    for (const email of ['ops\u0000evil@example.test', 'ops\u007f@example.test']) {
      const r = await cli(['admin', 'create', '--email', email, '--password-env', 'ADMIN_PW'], { ADMIN_PW: OPERATOR_PASSWORD })
      assert.equal(r.code, 2, JSON.stringify(email) + r.stderr)
      assert.match(r.stderr, /^rekey: ERR_USAGE: --email must be an email address/)
    }
  })
})
