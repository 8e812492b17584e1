/**
 * `rekey rotate --smoke URL` and `rekey finalize --smoke URL` against a real service listening
 * on 127.0.0.1: a passing smoke test keeps the change; a failing one rolls a rotation back and
 * keeps finalize from running (exit 1, naming the failed step).
 */
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { runCli } from './helpers.ts'
import { signedIn, testServer, type TestServer } from '../http/support.ts'

describe('--smoke guards managed rotate and finalize', () => {
  let server: TestServer
  let db: string
  let smoke: { email: string, password: string }
  const cli = (argv: string[], env: Record<string, string> = {}) => runCli(['--store', db, '--operator', 'ops', ...argv], env)
  const guard = (url = server.url): string[] => ['--smoke', url, '--smoke-email', smoke.email, '--smoke-password-env', 'SMOKE_PASSWORD']
  const states = async (): Promise<string[]> => (await server.service.store.listKeys('access')).map((k) => k.state)

  before(async () => {
    server = await testServer({ listen: true, env: { REKEY_PORT: '0', REKEY_SCHEDULER: 'off' } })
    db = join(server.dir, 'rekey.db')
    const user = await signedIn(server)
    smoke = { email: user.email, password: user.password }
  })
  after(async () => { await server.stop() })

  test('usage: --smoke needs its account; it cannot guard --hard (exit 2)', async () => {
    assert.equal((await cli(['rotate', '--smoke', server.url])).code, 2)
    const hard = await cli(['rotate', '--hard', ...guard()], { SMOKE_PASSWORD: smoke.password })
    assert.equal(hard.code, 2)
    assert.match(hard.stderr, /cannot guard --hard/)
    assert.match((await cli(['rotate', ...guard()])).stderr, /SMOKE_PASSWORD is not set/)
    assert.deepEqual(await states(), ['current'])
  })

  test('rotate: a passing smoke test keeps the rotation', async () => {
    const r = await cli(['--json', 'rotate', '--secret', 'access', ...guard()], { SMOKE_PASSWORD: smoke.password })
    assert.equal(r.code, 0, r.stderr)
    const report = JSON.parse(r.stdout) as { staged: { kid: string }[], smoke: { ok: boolean, steps: { step: string, accessKid?: string | null }[] }, rolledBack: null }
    assert.equal(report.smoke.ok, true)
    assert.equal(report.rolledBack, null)
    assert.equal(report.smoke.steps.find((s) => s.step === 'login')?.accessKid, report.staged[0]?.kid, 'the smoke test logged in with the new key')
    assert.deepEqual(await states(), ['previous', 'current'])
    assert.ok(!r.stdout.includes(smoke.password))
  })

  test('rotate: a failing smoke test rolls back and exits 1 naming the step', async () => {
    const before = server.service.keys.access.currentKid
    const r = await cli(['rotate', '--secret', 'access', ...guard()], { SMOKE_PASSWORD: 'not-the-password' })
    assert.equal(r.code, 1)
    assert.match(r.stderr, /^rekey: ERR_REFUSED: smoke test failed at login \(HTTP 401 \(expected 200\): invalid_credentials\): the rotation was rolled back \(access key \S+ current → previous; access key \S+ previous → current\)/)
    const keys = await server.service.store.listKeys('access')
    assert.equal(keys.find((k) => k.state === 'current')?.kid, before, 'the key that signed before signs again')
    const methods = (await server.service.store.listAudit()).filter((a) => a.operator === 'ops').map((a) => a.method)
    assert.deepEqual(methods.slice(-3), ['rotate-stage', 'rotate', 'rollback'])
  })

  test('finalize: the smoke test runs first; on failure finalize does not run (exit 1), on success it does', async () => {
    const failed = await cli(['finalize', '--secret', 'access', '--force', ...guard('http://127.0.0.1:1')], { SMOKE_PASSWORD: smoke.password })
    assert.equal(failed.code, 1)
    assert.match(failed.stderr, /smoke test failed at ping .*finalize did not run/)
    assert.ok((await states()).includes('previous'))
    const ok = await cli(['finalize', '--secret', 'access', '--force', ...guard()], { SMOKE_PASSWORD: smoke.password })
    assert.equal(ok.code, 0, ok.stderr)
    assert.ok(!(await states()).includes('previous'))
  })
})
