import assert from 'node:assert/strict'
import { readFileSync, statSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { describe, it, mock } from 'node:test'
import { Keyring } from '../../src/index.ts'
import { parseEnv } from '../../src/config/env-file.ts'
import { runBin, runCli, tempDir } from './helpers.ts'

const OLD = 'a'.repeat(16) + '0123456789abcdef0123456789abcdef'
const HEADER = '# production settings\n\nPORT=3000\nexport JWT_SECRET="' + OLD + '"\nJWT_EXPIRATION=15m   # access token lifetime\nDATABASE_URL=\'postgres://app@db/app\'\n'

function envOf(file: string): Record<string, string> {
  return parseEnv(readFileSync(file, 'utf8'))
}

function keyringOf(file: string): Keyring {
  return Keyring.fromEnv(envOf(file))
}

describe('env-file runbook: JWT_SECRET / JWT_SECRET_PREV', () => {
  it('rotates, keeps the file as it was, refuses an early finalize, finalizes after the grace window', async (t) => {
    const dir = tempDir(t)
    const file = path.join(dir, '.env')
    writeFileSync(file, HEADER, { mode: 0o644 })
    const start = Date.parse('2026-03-01T10:00:00Z')
    mock.timers.enable({ apis: ['Date'], now: start })
    t.after(() => mock.timers.reset())

    const before = keyringOf(file)
    const oldToken = before.sign({ sub: 'user-1' })

    const rotated = await runCli(['--env-file', file, 'rotate'])
    assert.equal(rotated.code, 0, rotated.stderr)
    assert.doesNotMatch(rotated.stdout, new RegExp(OLD))
    const after = envOf(file)
    assert.notEqual(after.JWT_SECRET, OLD)
    assert.equal(after.JWT_SECRET_PREV, OLD)
    assert.equal(after.JWT_SECRET_ROTATED_AT, '2026-03-01T10:00:00.000Z')
    assert.ok(!rotated.stdout.includes(after.JWT_SECRET as string), 'the new secret is never printed')

    const text = readFileSync(file, 'utf8')
    assert.ok(text.startsWith('# production settings\n\nPORT=3000\nexport JWT_SECRET="'), 'comments, blank lines, order, export and quotes kept')
    assert.match(text, /JWT_EXPIRATION=15m {3}# access token lifetime\n/)
    assert.match(text, /DATABASE_URL='postgres:\/\/app@db\/app'\n/)
    assert.equal(statSync(file).mode & 0o777, 0o644, 'the file keeps its mode')
    assert.match(rotated.stderr, /readable by everyone on this machine \(mode 0644\)/)
    assert.equal(readFileSync(`${file}.bak.1`, 'utf8'), HEADER)
    assert.equal(statSync(`${file}.bak.1`).mode & 0o777, 0o600)

    // During grace the old token verifies as previous, new tokens are signed by the new key.
    const grace = keyringOf(file)
    assert.equal(grace.verify(oldToken).state, 'previous')
    assert.equal(grace.verify(grace.sign({ sub: 'user-2' })).state, 'current')

    const second = await runCli(['--env-file', file, 'rotate'])
    assert.equal(second.code, 1)
    assert.match(second.stderr, /ERR_UNSAFE: .*grace window/)

    mock.timers.setTime(start + 10 * 60_000)
    const early = await runCli(['--env-file', file, 'finalize'])
    assert.equal(early.code, 1)
    assert.match(early.stderr, /ERR_UNSAFE: Tokens signed by the old key may be live until 2026-03-01T10:16:00.000Z/)
    assert.equal(envOf(file).JWT_SECRET_PREV, OLD, 'a refused finalize changes nothing')

    mock.timers.setTime(start + 16 * 60_000)
    const done = await runCli(['--env-file', file, 'finalize'])
    assert.equal(done.code, 0, done.stderr)
    const final = envOf(file)
    assert.equal(final.JWT_SECRET_PREV, undefined)
    assert.equal(final.JWT_SECRET_ROTATED_AT, undefined)
    assert.equal(final.JWT_SECRET, after.JWT_SECRET)
    assert.throws(() => keyringOf(file).verify(oldToken), { code: 'ERR_KEY_UNKNOWN' })
  })

  it('finalize --force cuts the old key before the window ends', async (t) => {
    const dir = tempDir(t)
    const file = path.join(dir, '.env')
    writeFileSync(file, HEADER)
    assert.equal((await runCli(['--env-file', file, 'rotate'])).code, 0)
    const forced = await runCli(['--env-file', file, 'finalize', '--force'])
    assert.equal(forced.code, 0, forced.stderr)
    assert.match(forced.stdout, /forced before the grace window ended/)
    assert.equal(envOf(file).JWT_SECRET_PREV, undefined)
  })

  it('rollback makes the previous key sign again; the rolled-back key still verifies', async (t) => {
    const dir = tempDir(t)
    const file = path.join(dir, '.env')
    writeFileSync(file, HEADER)
    assert.equal((await runCli(['--env-file', file, 'rotate'])).code, 0)
    const rotated = envOf(file)
    const newToken = keyringOf(file).sign({ sub: 'u' })
    const back = await runCli(['--env-file', file, 'rollback'])
    assert.equal(back.code, 0, back.stderr)
    const env = envOf(file)
    assert.equal(env.JWT_SECRET, OLD)
    assert.equal(env.JWT_SECRET_PREV, rotated.JWT_SECRET)
    assert.equal(keyringOf(file).verify(newToken).state, 'previous')
    assert.equal((await runCli(['--env-file', file, 'finalize', '--force'])).code, 0)
    assert.equal((await runCli(['--env-file', file, 'rollback'])).code, 1, 'nothing left to roll back to')
  })

  it('rotate --hard drops the old key at once', async (t) => {
    const dir = tempDir(t)
    const file = path.join(dir, '.env')
    writeFileSync(file, HEADER)
    const oldToken = keyringOf(file).sign({ sub: 'u' })
    const hard = await runCli(['--env-file', file, 'rotate', '--hard'])
    assert.equal(hard.code, 0, hard.stderr)
    const env = envOf(file)
    assert.notEqual(env.JWT_SECRET, OLD)
    assert.equal(env.JWT_SECRET_PREV, undefined)
    assert.throws(() => keyringOf(file).verify(oldToken), { code: 'ERR_KEY_UNKNOWN' })
  })
})

describe('env-file runbook: JWT_SECRET_CURRENT / JWT_SECRET_NEW', () => {
  it('rotate adds NEW and the date; finalize collapses to JWT_SECRET', async (t) => {
    const dir = tempDir(t)
    const file = path.join(dir, '.env')
    writeFileSync(file, `# keys\nJWT_SECRET_CURRENT=${OLD}\nOTHER=x\n`)
    const start = Date.parse('2026-05-01T00:00:00Z')
    mock.timers.enable({ apis: ['Date'], now: start })
    t.after(() => mock.timers.reset())
    const oldToken = keyringOf(file).sign({ sub: 'u' })
    assert.equal((await runCli(['--env-file', file, 'rotate'])).code, 0)
    const env = envOf(file)
    assert.equal(env.JWT_SECRET_CURRENT, OLD)
    assert.ok((env.JWT_SECRET_NEW ?? '').length >= 64)
    assert.equal(env.JWT_SECRET_ROTATION_DATE, '2026-05-01T00:00:00.000Z')
    const ring = keyringOf(file)
    assert.equal(ring.verify(oldToken).state, 'previous')
    mock.timers.setTime(start + 20 * 60_000)
    const early = await runCli(['--env-file', file, 'finalize'])
    assert.equal(early.code, 1, 'no JWT_EXPIRATION: 24 hours are assumed, not 15 minutes')
    assert.match(early.stderr, /may be live until 2026-05-02T00:01:00.000Z \(token lifetime assumed: no JWT_EXPIRATION/)
    mock.timers.setTime(start + 86_400_000 + 60_000)
    assert.equal((await runCli(['--env-file', file, 'finalize'])).code, 0)
    const final = envOf(file)
    assert.deepEqual(Object.keys(final).sort(), ['JWT_SECRET', 'OTHER'])
    assert.equal(final.JWT_SECRET, env.JWT_SECRET_NEW)
    assert.match(readFileSync(file, 'utf8'), /^# keys\n/)
  })
})

describe('env-file runbook: access and refresh secrets', () => {
  it('rotates JWT_REFRESH_SECRET with --secret refresh and waits for the refresh lifetime', async (t) => {
    const dir = tempDir(t)
    const file = path.join(dir, '.env')
    writeFileSync(file, `JWT_ACCESS_SECRET=${OLD}\nJWT_REFRESH_SECRET=${OLD.toUpperCase()}\nJWT_REFRESH_EXPIRATION=7d\n`)
    const start = Date.parse('2026-05-01T00:00:00Z')
    mock.timers.enable({ apis: ['Date'], now: start })
    t.after(() => mock.timers.reset())
    assert.equal((await runCli(['--env-file', file, 'rotate'])).code, 2, 'the generic family is ambiguous here')
    assert.equal((await runCli(['--env-file', file, 'rotate', '--secret', 'refresh'])).code, 0)
    const env = envOf(file)
    assert.equal(env.JWT_REFRESH_SECRET_PREV, OLD.toUpperCase())
    assert.equal(env.JWT_ACCESS_SECRET, OLD, 'the access secret is untouched')
    mock.timers.setTime(start + 86_400_000)
    const early = await runCli(['--env-file', file, 'finalize', '--secret', 'refresh'])
    assert.equal(early.code, 1)
    assert.match(early.stderr, /2026-05-08T00:01:00.000Z/)
  })
})

describe('env-file finalize: refresh tokens signed with JWT_SECRET', () => {
  it('waits for JWT_REFRESH_EXPIRATION when no JWT_REFRESH_SECRET exists (real process); not when one does', async (t) => {
    const dir = tempDir(t)
    const rotatedAt = new Date(Date.now() - 2 * 3_600_000)
    const grace = `JWT_SECRET=${'n'.repeat(48)}\nJWT_SECRET_PREV=${OLD}\nJWT_SECRET_ROTATED_AT=${rotatedAt.toISOString()}\nJWT_EXPIRATION=15m\nJWT_REFRESH_EXPIRATION=7d\n`
    const shared = path.join(dir, 'shared.env')
    writeFileSync(shared, grace, { mode: 0o600 })
    const refused = await runBin(['--env', shared, 'finalize'])
    assert.equal(refused.code, 1, refused.stdout + refused.stderr)
    const safeAt = new Date(rotatedAt.getTime() + (7 * 86_400 + 60) * 1000).toISOString()
    assert.match(refused.stderr, new RegExp(`^rekey: ERR_UNSAFE: Tokens signed by the old key may be live until ${safeAt.replace(/[.]/g, '\\.')}`))
    assert.match(refused.stderr, /JWT_REFRESH_EXPIRATION in .*shared\.env: refresh tokens are signed with JWT_SECRET too/)
    assert.equal(envOf(shared).JWT_SECRET_PREV, OLD, 'nothing was cut')
    const status = await runBin(['--env', shared, '--json', 'status'])
    assert.equal(status.code, 0, status.stderr)
    assert.equal((JSON.parse(status.stdout) as { secrets: Array<{ tokenLifetime: { seconds: number } }> }).secrets[0]?.tokenLifetime.seconds, 7 * 86_400)

    const own = path.join(dir, 'own.env')
    writeFileSync(own, `${grace}JWT_REFRESH_SECRET=${OLD.toUpperCase()}\n`, { mode: 0o600 })
    const done = await runBin(['--env', own, 'finalize'])
    assert.equal(done.code, 0, done.stderr)
    assert.equal(envOf(own).JWT_SECRET_PREV, undefined, 'access tokens alone use JWT_SECRET: 15 min were enough')
  })
})

describe('the CLI as a process', () => {
  it('exits 0, 1 and 2 as the contract says and never prints a secret', async (t) => {
    const dir = tempDir(t)
    const file = path.join(dir, '.env')
    writeFileSync(file, `JWT_SECRET=${OLD}\n`)
    const ok = await runBin(['--env-file', file, 'rotate'])
    assert.equal(ok.code, 0, ok.stderr)
    const refused = await runBin(['--env-file', file, 'finalize'])
    assert.equal(refused.code, 1)
    assert.match(refused.stderr, /^rekey: ERR_UNSAFE: /)
    assert.doesNotMatch(refused.stderr, /\n\s+at /, 'no stack trace')
    const usage = await runBin(['rotate', '--bogus'])
    assert.equal(usage.code, 2)
    const status = await runBin(['--env-file', file, '--json', 'status'])
    assert.equal(status.code, 0)
    const report = JSON.parse(status.stdout) as { secrets: { phase: string, keys: unknown[] }[] }
    assert.equal(report.secrets[0]?.phase, 'grace')
    assert.equal(report.secrets[0]?.keys.length, 2)
    const env = envOf(file)
    for (const out of [ok, refused, usage, status]) {
      assert.ok(!out.stdout.includes(OLD) && !out.stderr.includes(OLD))
      assert.ok(!out.stdout.includes(env.JWT_SECRET as string) && !out.stderr.includes(env.JWT_SECRET as string))
    }
  })

  it('gen prints a secret only without a target', async (t) => {
    const dir = tempDir(t)
    const printed = await runBin(['gen', '--bytes', '48', '--encoding', 'base64url'])
    assert.equal(printed.code, 0)
    assert.equal(Buffer.from(printed.stdout.trim(), 'base64url').length, 48)
    const file = path.join(dir, 'app.env')
    const written = await runBin(['--env-file', file, 'gen', '--var', 'SESSION_SECRET'])
    assert.equal(written.code, 0, written.stderr)
    const value = envOf(file).SESSION_SECRET as string
    assert.equal(value.length, 64)
    assert.ok(!written.stdout.includes(value))
    assert.equal(statSync(file).mode & 0o777, 0o600)
    assert.equal((await runBin(['gen', '--bytes', '16'])).code, 2)
  })
})
