/**
 * `rekey smoke` against a real `rekey serve` on a socket (127.0.0.1, port 0, temp SQLite store):
 * the passing run, a wrong password failing at login, a server that is down failing fast, and
 * output that never holds a token or the password.
 */
import assert from 'node:assert/strict'
import net from 'node:net'
import { after, before, describe, test } from 'node:test'
import { runSmoke } from '../../src/ops/smoke/run-smoke.ts'
import { runCli } from '../cli/helpers.ts'
import { headerOf, testServer, type TestServer } from '../http/support.ts'

const EMAIL = 'smoke@example.test'
const PASSWORD = 'smoke-password-0123456789'

describe('rekey smoke', () => {
  let server: TestServer
  before(async () => {
    server = await testServer({ listen: true, flags: { port: 0, host: '127.0.0.1' } })
    const reg = await server.request('POST', '/api/auth/register', { body: { email: EMAIL, password: PASSWORD } })
    assert.equal(reg.statusCode, 201)
  })
  after(async () => { await server.stop() })

  test('passes every step, printing status, latency and the kid of each token; exit 0', async () => {
    const { code, stdout, stderr } = await runCli(['smoke', '--url', server.url, '--email', EMAIL, '--password-env', 'SMOKE_PW'], { SMOKE_PW: PASSWORD })
    assert.equal(code, 0, stderr)
    for (const step of ['ping', 'login', 'me', 'refresh', 'me-after-refresh']) assert.match(stdout, new RegExp(`ok +${step} +200 +\\d+ ms`))
    // The kids printed are the service's current keys.
    const login = await server.request('POST', '/api/auth/login', { body: { email: EMAIL, password: PASSWORD } })
    const { accessToken, refreshToken } = login.json() as { accessToken: string, refreshToken: string }
    assert.ok(stdout.includes(`access kid ${String(headerOf(accessToken).kid)}`))
    assert.ok(stdout.includes(`refresh kid ${String(headerOf(refreshToken).kid)}`))
    assert.match(stdout, /smoke test passed/)
    assert.ok(!stdout.includes(PASSWORD) && !stderr.includes(PASSWORD))
    assert.doesNotMatch(stdout, /eyJ[A-Za-z0-9_-]{10,}/, 'no JWT in the output')
  })

  test('--json gives each step with status, ms and kids, and no token', async () => {
    const { code, stdout } = await runCli(['--json', 'smoke', '--url', server.url, '--email', EMAIL, '--password-env', 'SMOKE_PW'], { SMOKE_PW: PASSWORD })
    assert.equal(code, 0)
    const result = JSON.parse(stdout) as { ok: boolean, failedStep: null, steps: Array<{ step: string, status: number, ms: number, accessKid?: string }> }
    assert.equal(result.ok, true)
    assert.deepEqual(result.steps.map((s) => s.step), ['ping', 'login', 'me', 'refresh', 'me-after-refresh'])
    assert.ok(result.steps.every((s) => s.status === 200 && Number.isInteger(s.ms)))
    assert.equal(typeof result.steps[1]?.accessKid, 'string')
    assert.doesNotMatch(stdout, /eyJ/)
  })

  test('a wrong password fails at login: exit 1, the step named, no password printed', async () => {
    const wrong = 'wrong-password-for-smoke-987'
    const { code, stdout, stderr } = await runCli(['smoke', '--url', server.url, '--email', EMAIL, '--password-env', 'SMOKE_PW'], { SMOKE_PW: wrong })
    assert.equal(code, 1)
    assert.match(stdout, /FAIL login +401 .*invalid_credentials/)
    assert.match(stderr, /smoke test failed at login/)
    assert.doesNotMatch(stdout, /me-after-refresh/, 'steps after the failure do not run')
    assert.ok(!`${stdout}${stderr}`.includes(wrong))
  })

  test('a missing --password-env variable is bad usage (exit 2)', async () => {
    const { code, stderr } = await runCli(['smoke', '--url', server.url, '--email', EMAIL, '--password-env', 'NOT_SET_HERE'], {})
    assert.equal(code, 2)
    assert.match(stderr, /NOT_SET_HERE/)
  })
})

describe('rekey smoke against a server that is down', () => {
  test('a refused connection fails at ping at once (exit 1)', async () => {
    const port = await new Promise<number>((resolve) => {
      const probe = net.createServer().listen(0, '127.0.0.1', () => {
        const { port: p } = probe.address() as net.AddressInfo
        probe.close(() => resolve(p))
      })
    })
    const started = Date.now()
    const { code, stdout } = await runCli(['smoke', '--url', `http://127.0.0.1:${port}`, '--email', EMAIL, '--password-env', 'P'], { P: PASSWORD })
    assert.equal(code, 1)
    assert.match(stdout, /FAIL ping +--- .*ECONNREFUSED/)
    assert.ok(Date.now() - started < 2000)
  })

  test('a server that accepts but never answers fails at ping after the step timeout', async (t) => {
    const sockets = new Set<net.Socket>()
    const silent = net.createServer((s) => { sockets.add(s) }).listen(0, '127.0.0.1')
    await new Promise((resolve) => silent.once('listening', resolve))
    t.after(() => { for (const s of sockets) s.destroy(); silent.close() })
    const { port } = silent.address() as net.AddressInfo
    const started = Date.now()
    const result = await runSmoke({ url: `http://127.0.0.1:${port}`, email: EMAIL, password: PASSWORD, timeoutMs: 300 })
    assert.equal(result.ok, false)
    assert.equal(result.failedStep, 'ping')
    assert.equal(result.steps[0]?.error, 'no answer within 300 ms')
    assert.ok(Date.now() - started < 2000)
  })
})
