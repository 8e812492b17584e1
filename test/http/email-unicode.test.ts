/**
 * Emails are one Unicode spelling: against a real `rekey serve` process, an address with an
 * invisible or bidi character is refused, and `café` typed precomposed or decomposed is one
 * account for register, login, `admin create` and `users force-reset`.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'
import { FAST_ENV, post, startServe, type ServeProc } from '../multi-instance/cluster.ts'
import { runBin } from '../cli/helpers.ts'

const PASSWORD = 'a-long-enough-password-42'
/** `café` precomposed (U+00E9) and decomposed (`e` + U+0301): two strings, one address. */
const PRECOMPOSED = 'caf\u00e9@example.test'
const DECOMPOSED = 'cafe\u0301@example.test'

describe('Unicode in emails', () => {
  let server: ServeProc
  let dir: string
  let env: Record<string, string>

  before(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'rekey-email-'))
    env = { ...FAST_ENV, REKEY_MASTER_KEY: randomBytes(32).toString('base64'), REKEY_STORE: path.join(dir, 'rekey.db') }
    server = await startServe({ cwd: dir, env })
  })
  after(async () => {
    await server?.stop()
    rmSync(dir, { recursive: true, force: true })
  })

  test('register refuses format, bidi and invisible characters with 400 validation_failed', async () => {
    const hidden = ['\u202e', '\u200b', '\u2066', '\u00ad', '\u200e', '\ufeff', '\u2060', '\u034f', '\ufe0f', '\u3164']
    for (const char of hidden) {
      for (const email of [`ad${char}min@example.test`, `admin@exa${char}mple.test`]) {
        const res = await post(`${server.url}/api/auth/register`, { email, password: PASSWORD })
        assert.equal(res.status, 400, `U+${(char.codePointAt(0) as number).toString(16)}`)
        assert.equal((await res.json() as { error: string }).error, 'validation_failed')
      }
    }
  })

  test('café precomposed and decomposed is one account: the second register is taken, login works either way', async () => {
    assert.equal((await post(`${server.url}/api/auth/register`, { email: PRECOMPOSED, password: PASSWORD })).status, 201)
    const twice = await post(`${server.url}/api/auth/register`, { email: DECOMPOSED.toUpperCase(), password: PASSWORD })
    assert.equal(twice.status, 409)
    assert.equal((await twice.json() as { error: string }).error, 'email_taken')
    for (const email of [PRECOMPOSED, DECOMPOSED]) {
      assert.equal((await post(`${server.url}/api/auth/login`, { email, password: PASSWORD })).status, 200, JSON.stringify(email))
    }
    const reset = await runBin(['--store', env.REKEY_STORE as string, '--operator', 'ops', 'users', 'force-reset', '--email', DECOMPOSED], { cwd: dir, env })
    assert.equal(reset.code, 0, reset.stderr)
    assert.match(reset.stdout, /^1 user must set a new password/)
  })

  test('compatibility forms are one account too: fullwidth letters and ligatures fold (NFKC)', async () => {
    for (const [first, second] of [['admin@fold.test', '\uff41dmin@fold.test'], ['\ufb01le@fold.test', 'file@fold.test']]) {
      assert.equal((await post(`${server.url}/api/auth/register`, { email: first, password: PASSWORD })).status, 201, JSON.stringify(first))
      const twice = await post(`${server.url}/api/auth/register`, { email: second, password: PASSWORD })
      assert.equal(twice.status, 409, JSON.stringify(second))
      assert.equal((await post(`${server.url}/api/auth/login`, { email: second, password: PASSWORD })).status, 200)
    }
  })

  test('admin create finds the account under the other spelling, and refuses a bidi character (exit 2)', async () => {
    const email = `ren\u00e9-${randomBytes(3).toString('hex')}@example.test`
    assert.equal((await post(`${server.url}/api/auth/register`, { email, password: PASSWORD })).status, 201)
    const create = ['--store', env.REKEY_STORE as string, '--operator', 'ops', 'admin', 'create', '--password-env', 'ADMIN_PW', '--email']
    const decomposed = email.normalize('NFD')
    assert.notEqual(decomposed, email)
    const taken = await runBin([...create, decomposed], { cwd: dir, env: { ...env, ADMIN_PW: PASSWORD } })
    assert.equal(taken.code, 1, taken.stderr)
    assert.match(taken.stderr, /^rekey: ERR_CONFLICT: a user .* already exists and is not an admin/)
    const bidi = await runBin([...create, 'ops\u202e@example.test'], { cwd: dir, env: { ...env, ADMIN_PW: PASSWORD } })
    assert.equal(bidi.code, 2)
    assert.match(bidi.stderr, /^rekey: ERR_USAGE: --email must be an email address\n$/)
  })
})
