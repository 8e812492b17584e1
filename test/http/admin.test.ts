/**
 * The admin API: 401 without a valid token, 403 for a user without the admin role, and the
 * managed operations for an admin (made by `rekey admin create`), audited with the admin's
 * email and the request id.
 */
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { runCli } from '../cli/helpers.ts'
import { headerOf, signedIn, testServer, type TestServer } from './support.ts'

describe('admin API', () => {
  let server: TestServer
  let admin: string
  let user: string
  const email = 'ops@example.test'
  const password = 'correct horse battery staple'

  before(async () => {
    server = await testServer()
    const created = await runCli(['--store', join(server.dir, 'rekey.db'), '--json', 'admin', 'create', '--email', email, '--password-env', 'ADMIN_PW'],
      { ADMIN_PW: password, REKEY_ARGON2_MEMORY_KIB: '64', REKEY_ARGON2_TIME_COST: '1' })
    assert.equal(created.code, 0, created.stderr)
    assert.doesNotMatch(created.stdout, /horse/)
    const login = await server.request('POST', '/api/auth/login', { body: { email, password } })
    assert.equal(login.statusCode, 200)
    admin = (login.json() as { accessToken: string }).accessToken
    user = (await signedIn(server)).accessToken
  })
  after(async () => { await server.stop() })

  test('admin create: the password comes from the named variable only; missing variable is bad usage', async () => {
    const missing = await runCli(['--store', join(server.dir, 'rekey.db'), 'admin', 'create', '--email', 'x@example.test', '--password-env', 'NOPE'], {})
    assert.equal(missing.code, 2)
    assert.match(missing.stderr, /NOPE is not set/)
    const me = await server.request('GET', '/api/auth/me', { token: admin })
    assert.equal((me.json() as { role: string }).role, 'admin')
  })

  test('401 without a valid token, 403 for a non-admin, 200 for an admin', async () => {
    const none = await server.request('GET', '/api/admin/keys')
    assert.equal(none.statusCode, 401)
    assert.equal((none.json() as { error: string }).error, 'unauthorized')
    const bad = await server.request('GET', '/api/admin/keys', { token: 'a.b.c' })
    assert.equal(bad.statusCode, 401)
    const forbidden = await server.request('POST', '/api/admin/rotate', { token: user, body: {} })
    assert.equal(forbidden.statusCode, 403)
    assert.deepEqual(forbidden.json(), { error: 'forbidden', message: 'This route needs the admin role' })
    const keys = await server.request('GET', '/api/admin/keys', { token: admin })
    assert.equal(keys.statusCode, 200)
    const body = keys.json() as { keysetVersion: number, keys: Record<string, unknown>[] }
    assert.ok(body.keys.some((k) => k.state === 'current' && k.purpose === 'access'))
    assert.ok(body.keys.every((k) => !('sealedMaterial' in k)), 'no key material')
  })

  test('rotate, refused finalize, status and audit: the same operations as the CLI, audited with the request id', async () => {
    const rotate = await server.request('POST', '/api/admin/rotate', { token: admin, body: { secret: 'access' } })
    assert.equal(rotate.statusCode, 200, rotate.body)
    const counted = await server.service.metrics.registry.getSingleMetricAsString('rekey_rotation_events_total')
    assert.match(counted, /rekey_rotation_events_total\{type="rotate-started"\} 1/)
    assert.match(counted, /rekey_rotation_events_total\{type="rotate-completed"\} 1/)
    const report = rotate.json() as { promoted: boolean, staged: { kid: string }[] }
    assert.equal(report.promoted, true)
    assert.equal(server.service.keys.access.currentKid, report.staged[0]?.kid)
    // The admin's own token was signed by the old key: it still works during the grace window.
    assert.equal(headerOf(admin).kid !== report.staged[0]?.kid, true)
    const finalize = await server.request('POST', '/api/admin/finalize', { token: admin, body: { secret: 'access' } })
    assert.equal(finalize.statusCode, 409)
    assert.equal((finalize.json() as { error: string }).error, 'ERR_UNSAFE')
    const status = await server.request('GET', '/api/admin/status', { token: admin })
    assert.equal(status.statusCode, 200)
    const s = status.json() as { mode: string, secrets: { secret: string, phase: string }[], instances: { instanceId: string }[] }
    assert.equal(s.mode, 'managed')
    assert.equal(s.secrets.find((x) => x.secret === 'access')?.phase, 'grace')
    assert.deepEqual(s.instances.map((i) => i.instanceId), [server.service.instanceId])

    const audit = await server.request('GET', `/api/admin/audit?since=${encodeURIComponent(new Date(Date.now() - 60_000).toISOString())}`, { token: admin })
    assert.equal(audit.statusCode, 200)
    const events = (audit.json() as { events: { method: string, operator: string, requestId: string | null }[] }).events
    const rotated = events.filter((e) => e.method === 'rotate-stage' || e.method === 'rotate')
    assert.equal(rotated.length, 2)
    // The last request to this route (an earlier test sent one as a non-admin).
    const logged = server.logs.parsed().filter((l) => (l.req as { url?: string } | undefined)?.url === '/api/admin/rotate').at(-1)
    assert.ok(logged !== undefined)
    for (const e of rotated) assert.deepEqual([e.operator, e.requestId], [email, logged.reqId])
  })

  test('schemas refuse unknown fields; unknown kid is 404; revoking the current key is 409', async () => {
    const extra = await server.request('POST', '/api/admin/rotate', { token: admin, body: { secret: 'access', please: true } })
    assert.equal(extra.statusCode, 400)
    const wrong = await server.request('POST', '/api/admin/finalize', { token: admin, body: { secret: 'master-key' } })
    assert.equal(wrong.statusCode, 400)
    const unknown = await server.request('POST', '/api/admin/revoke', { token: admin, body: { kid: 'nope' } })
    assert.equal(unknown.statusCode, 404)
    const current = await server.request('POST', '/api/admin/revoke', { token: admin, body: { kid: server.service.keys.access.currentKid } })
    assert.equal(current.statusCode, 409)
    assert.equal((current.json() as { error: string }).error, 'ERR_UNSAFE')
    const noReason = await server.request('POST', '/api/admin/emergency', { token: admin, body: {} })
    assert.equal(noReason.statusCode, 400)
    const rollback = await server.request('POST', '/api/admin/rollback', { token: admin })
    assert.equal(rollback.statusCode, 200, rollback.body)
  })

  test('emergency through the API ends the admin\'s own session too', async () => {
    const res = await server.request('POST', '/api/admin/emergency', { token: admin, body: { secret: 'all', reason: 'drill' } })
    assert.equal(res.statusCode, 200, res.body)
    const report = res.json() as { revoked: unknown[], sessionsEnded: number }
    assert.ok(report.revoked.length >= 2)
    assert.ok(report.sessionsEnded >= 2)
    const after = await server.request('GET', '/api/admin/keys', { token: admin })
    assert.equal(after.statusCode, 401)
  })
})
