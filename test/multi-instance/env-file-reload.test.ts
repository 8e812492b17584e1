/**
 * Env-file mode without restarts: two `rekey --env-file F serve` processes on one file, one
 * watching it, one reloading on SIGHUP only (`--no-watch`). `rekey --env-file F rotate` as a
 * process: new logins sign with the new kid on both, the old token keeps verifying; a broken
 * file is logged and changes nothing; `finalize --force` and the old token is refused.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { after, before, describe, test } from 'node:test'
import { headerOf, me, post, runRekey, signUp, startServe, until, type ServeProc, type TokenPair } from './cluster.ts'

describe('serve --env-file: reload on file change and on SIGHUP', () => {
  const dir = mkdtempSync(join(tmpdir(), 'rekey-reload-'))
  const file = join(dir, 'service.env')
  const secret = randomBytes(32).toString('hex')
  const original = `# service settings\nAPP_NAME=demo\nJWT_SECRET=${secret}\nJWT_REFRESH_SECRET=${randomBytes(32).toString('hex')}\n`
  let watching: ServeProc
  let onSignal: ServeProc
  const kidOfLogin = async (server: ServeProc, creds: { email: string, password: string }): Promise<string> => {
    const res = await post(`${server.url}/api/auth/login`, { email: creds.email, password: creds.password })
    assert.equal(res.status, 200)
    return headerOf((await res.json() as TokenPair).accessToken).kid as string
  }

  before(async () => {
    writeFileSync(file, original, { mode: 0o600 })
    watching = await startServe({ cwd: dir, env: {}, globals: ['--env-file', file] })
    onSignal = await startServe({ cwd: dir, env: {}, globals: ['--env-file', file], args: ['--no-watch'] })
  })
  after(async () => {
    await Promise.allSettled([watching?.stop(), onSignal?.stop()])
    rmSync(dir, { recursive: true, force: true })
  })

  test('rotate reaches both without a restart; a bad file keeps the keys; finalize --force cuts the old token', async () => {
    const user = await signUp(watching.url)
    const oldKid = headerOf(user.accessToken).kid as string
    assert.equal(await kidOfLogin(onSignal, user), oldKid, 'both instances read the same key from the file')

    const rotated = await runRekey(['--env-file', file, '--json', 'rotate'], { cwd: dir, env: {} })
    assert.equal(rotated.code, 0, rotated.stderr)
    const newKid = (JSON.parse(rotated.stdout) as { keys: { kid: string, state: string }[] }).keys.find((k) => k.state === 'current')?.kid as string
    assert.notEqual(newKid, oldKid)

    // The watching instance picks the change up by itself.
    const watchMs = await until(async () => await kidOfLogin(watching, user) === newKid, 5000, 'the watching instance to sign with the new kid', 25)
    assert.equal((await me(watching.url, user.accessToken)).status, 200, 'the old token verifies with the previous key')
    const status = await runRekey(['--env-file', file, '--json', 'status'], { cwd: dir, env: {} })
    const keys = (JSON.parse(status.stdout) as { secrets: { keys: { kid: string, state: string }[] }[] }).secrets[0]?.keys
    assert.deepEqual(keys?.map((k) => [k.kid, k.state]), [[newKid, 'current'], [oldKid, 'previous']])

    // The --no-watch instance keeps its keys until SIGHUP.
    await sleep(400)
    assert.equal(await kidOfLogin(onSignal, user), oldKid, 'no reload without SIGHUP under --no-watch')
    onSignal.child.kill('SIGHUP')
    await until(async () => await kidOfLogin(onSignal, user) === newKid, 3000, 'SIGHUP to load the new kid', 25)
    assert.equal((await me(onSignal.url, user.accessToken)).status, 200)
    assert.equal(onSignal.child.exitCode, null, 'SIGHUP does not end the process')

    // A broken file: logged without the secret, the keys in memory stay.
    const good = readFileSync(file, 'utf8')
    const weak = 'tooshort'
    writeFileSync(file, good.replace(/^JWT_SECRET=.*$/m, `JWT_SECRET=${weak}`))
    await until(() => /the env file has no valid keys/.test(watching.stdout.join('')), 3000, 'the error log line')
    const line = watching.stdout.join('').split('\n').find((l) => l.includes('the env file has no valid keys')) as string
    assert.match(line, /"level":50/)
    assert.doesNotMatch(line, new RegExp(`${weak}|${secret}`), 'no secret in the log')
    assert.equal(await kidOfLogin(watching, user), newKid)
    assert.equal((await me(watching.url, user.accessToken)).status, 200)
    writeFileSync(file, good)

    const finalized = await runRekey(['--env-file', file, 'finalize', '--force'], { cwd: dir, env: {} })
    assert.equal(finalized.code, 0, finalized.stderr)
    await until(async () => (await me(watching.url, user.accessToken)).status === 401, 3000, 'the watching instance to refuse the old token', 25)
    assert.equal((await me(onSignal.url, user.accessToken)).status, 200, 'not reloaded yet')
    onSignal.child.kill('SIGHUP')
    await until(async () => (await me(onSignal.url, user.accessToken)).status === 401, 3000, 'SIGHUP to drop the old key', 25)
    const fresh = await post(`${onSignal.url}/api/auth/login`, { email: user.email, password: user.password })
    assert.equal((await me(watching.url, (await fresh.json() as TokenPair).accessToken)).status, 200, 'a token from one instance verifies on the other')
    assert.ok(watchMs < 5000)
  })
})
