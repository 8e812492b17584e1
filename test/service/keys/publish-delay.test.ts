/**
 * Publish before use, on real processes: `rekey serve` with EdDSA access keys, the CLI, and
 * resource servers using jose's createRemoteJWKSet with its defaults (10-minute cache,
 * 30-second cooldown). A resource server holding a JWKS fetched before the rotation accepts
 * the new key's tokens the moment `rotate` returns, because the key was published for the
 * JWKS max-age (longer than jose's cooldown) before it signed; with `--publish-delay 0` the
 * same kind of server rejects them, which is what the delay prevents.
 *
 * To stay short, REKEY_JWKS_MAX_AGE is 6 s and the first resource server's clock runs 10x
 * (test/support/warp-clock.ts): the delay is 60 s of its time, its cooldown 30 s, the same
 * relation as the defaults (300 s against 30 s). The second resource server keeps real time.
 */
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import os from 'node:os'
import { join, resolve } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { headerOf, NODE, post, runRekey, signUp, spawnRekey, startServe, type ServeProc } from '../../multi-instance/cluster.ts'
import { spawn } from 'node:child_process'

const WARP = resolve(import.meta.dirname, '../../support/warp-clock.ts')
const RESOURCE = resolve(import.meta.dirname, '../../support/jose-resource-server.ts')

interface Resource { url: string, stop: () => void }

async function resourceServer(jwksUrl: string, warp: number): Promise<Resource> {
  const child = spawn(NODE, [RESOURCE], {
    env: { PATH: process.env.PATH ?? '', JWKS_URL: jwksUrl, REKEY_TEST_WARP: String(warp), NODE_OPTIONS: `--import=${WARP}` },
    cwd: resolve(import.meta.dirname, '../../..'),
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  const port = await new Promise<string>((res, rej) => {
    let out = ''
    child.stdout.on('data', (c: Buffer) => {
      out += c.toString()
      const m = /listening (\d+)/.exec(out)
      if (m !== null) res(m[1] as string)
    })
    child.once('exit', () => rej(new Error('the resource server exited')))
  })
  return { url: `http://127.0.0.1:${port}/check`, stop: () => child.kill('SIGTERM') }
}

const check = async (r: Resource, token: string): Promise<{ status: number, body: { kid?: string, error?: string } }> => {
  const res = await fetch(r.url, { headers: { authorization: `Bearer ${token}` } })
  return { status: res.status, body: await res.json() as { kid?: string, error?: string } }
}

describe('publish before use (EdDSA access keys, jose resource servers)', () => {
  let dir: string
  let serve: ServeProc
  const resources: Resource[] = []
  const env = (): Record<string, string> => ({ REKEY_STORE: join(dir, 'rekey.db'), REKEY_SCHEDULER: 'off', REKEY_JWKS_MAX_AGE: '6' })

  before(async () => {
    dir = mkdtempSync(join(os.tmpdir(), 'rekey-publish-'))
    serve = await startServe({ cwd: dir, env: { ...env(), REKEY_ACCESS_KEY_ALG: 'EdDSA', REKEY_SCHEDULER: 'off' } })
  })
  after(async () => {
    for (const r of resources) r.stop()
    await serve?.stop()
    rmSync(dir, { recursive: true, force: true })
  })

  test('the JWKS says max-age=REKEY_JWKS_MAX_AGE, and a rotation publishes the new key that long before it signs', async () => {
    const jwks = await fetch(`${serve.url}/.well-known/jwks.json`)
    assert.equal(jwks.headers.get('cache-control'), 'public, max-age=6')
    const user = await signUp(serve.url)
    const oldKid = headerOf(user.accessToken).kid as string

    // jose x10: its 30 s cooldown passes in 3 s. It fetches the JWKS now, before the rotation.
    const jose = await resourceServer(`${serve.url}/.well-known/jwks.json`, 10)
    resources.push(jose)
    assert.deepEqual(await check(jose, user.accessToken), { status: 200, body: { kid: oldKid } })

    // --timeout bounds the instance acknowledgements only, not the 6 s delay. The CLI's own
    // REKEY_JWKS_MAX_AGE is 0: the delay is the max-age the running service announced.
    const rotating = spawnRekey(['--json', 'rotate', '--secret', 'access', '--timeout', '2s'], { cwd: dir, env: { ...env(), REKEY_JWKS_MAX_AGE: '0' } })
    await rotating.waitForOutput(/publishing .* in the JWKS before it signs/, 20_000)
    // While it waits: the new key is published, the old one still signs.
    const published = await (await fetch(`${serve.url}/.well-known/jwks.json`)).json() as { keys: { kid: string }[] }
    assert.equal(published.keys.length, 2)
    const during = await post(`${serve.url}/api/auth/login`, { email: user.email, password: user.password })
    assert.equal(headerOf((await during.json() as { accessToken: string }).accessToken).kid, oldKid)
    const { code } = await rotating.exited
    assert.equal(code, 0, rotating.stderr.join(''))
    const report = JSON.parse(rotating.stdout.join('')) as { promoted: boolean, publishedUntil: string, signingEverywhere: boolean }
    assert.equal(report.promoted, true)
    assert.equal(report.signingEverywhere, true)
    assert.ok(report.publishedUntil !== null)

    // The moment rotate returns: a token of the new key, accepted by jose (it refetched, once).
    const login = await post(`${serve.url}/api/auth/login`, { email: user.email, password: user.password })
    const fresh = (await login.json() as { accessToken: string }).accessToken
    const newKid = headerOf(fresh).kid as string
    assert.notEqual(newKid, oldKid)
    assert.deepEqual(await check(jose, fresh), { status: 200, body: { kid: newKid } })
    assert.equal((await check(jose, user.accessToken)).status, 200, 'the old key still verifies')
  })

  test('with --publish-delay 0 the same resource server (real time) rejects new tokens: the delay is what prevents it', async () => {
    const user = await signUp(serve.url)
    const jose = await resourceServer(`${serve.url}/.well-known/jwks.json`, 1)
    resources.push(jose)
    assert.equal((await check(jose, user.accessToken)).status, 200)
    const r = await runRekey(['--json', 'rotate', '--secret', 'access', '--publish-delay', '0'], { cwd: dir, env: env() })
    assert.equal(r.code, 0, r.stderr)
    assert.equal((JSON.parse(r.stdout) as { promoted: boolean }).promoted, true)
    const login = await post(`${serve.url}/api/auth/login`, { email: user.email, password: user.password })
    const fresh = (await login.json() as { accessToken: string }).accessToken
    assert.deepEqual(await check(jose, fresh), { status: 401, body: { error: 'ERR_JWKS_NO_MATCHING_KEY' } })
  })

  test('HS256 keys are never delayed: the refresh key signs at once, even with --no-wait and an hour of max-age', async () => {
    const user = await signUp(serve.url)
    const r = await runRekey(['--json', 'rotate', '--secret', 'refresh', '--no-wait'], { cwd: dir, env: { ...env(), REKEY_JWKS_MAX_AGE: '3600' } })
    assert.equal(r.code, 0, r.stderr)
    const report = JSON.parse(r.stdout) as { promoted: boolean, publishedUntil: string | null, waitingFor: string | null, staged: { kid: string }[] }
    assert.deepEqual([report.promoted, report.publishedUntil, report.waitingFor], [true, null, null])
    assert.equal(headerOf(user.refreshToken).alg, 'HS256')
    const login = await post(`${serve.url}/api/auth/login`, { email: user.email, password: user.password })
    assert.equal(headerOf((await login.json() as { refreshToken: string }).refreshToken).kid, report.staged[0]?.kid, 'the new refresh key signs')
  })

  test('--no-wait returns at staging with the key published; emergency says it skipped the delay', async () => {
    const r = await runRekey(['--json', 'rotate', '--secret', 'access', '--no-wait'], { cwd: dir, env: env() })
    assert.equal(r.code, 0, r.stderr)
    const report = JSON.parse(r.stdout) as { promoted: boolean, waitingFor: string, staged: { kid: string }[], publishedUntil: string }
    assert.equal(report.promoted, false)
    assert.equal(report.waitingFor, 'publication')
    const until = Date.parse(report.publishedUntil) - Date.now()
    assert.ok(until > 0 && until <= 6000, `published for ${until} ms more`)
    const staged = report.staged[0]?.kid as string
    await new Promise((res) => setTimeout(res, 600)) // the instance reloads (SQLite change poll)
    const jwks = await (await fetch(`${serve.url}/.well-known/jwks.json`)).json() as { keys: { kid: string }[] }
    assert.ok(jwks.keys.some((k) => k.kid === staged), 'published at staging')
    assert.notEqual(headerOf((await signUp(serve.url)).accessToken).kid, staged, 'not signing yet')
    // rekey status says until when it is published before it signs.
    const status = await runRekey(['status'], { cwd: dir, env: env() })
    assert.match(status.stdout, new RegExp(`next +${staged} .*published in the JWKS, signs from ${report.publishedUntil.replaceAll('.', '\\.')}`))
    const statusJson = JSON.parse((await runRekey(['--json', 'status'], { cwd: dir, env: env() })).stdout) as { publishedUntil: Record<string, string> }
    assert.deepEqual(statusJson.publishedUntil, { [staged]: report.publishedUntil })

    const e = await runRekey(['emergency', '--secret', 'access', '--reason', 'test'], { cwd: dir, env: env() })
    assert.equal(e.code, 0, e.stderr)
    assert.match(e.stdout, /without the publication delay: verifiers outside rekey that cache the JWKS may reject new tokens until they refetch it/)
  })
})
