/**
 * Issue 10, items 3, 6, 7 and 8: symlinks, owner, mode and backups; both secrets at once and
 * the env-file emergency; the assumed token lifetime; webhook notices. The real CLI on real
 * files, each result read with rekey's parser, Node's and dotenv's.
 */
import assert from 'node:assert/strict'
import { chownSync, existsSync, linkSync, lstatSync, readdirSync, readFileSync, readlinkSync, statSync, symlinkSync, writeFileSync, mkdirSync } from 'node:fs'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import path from 'node:path'
import { describe, it, mock } from 'node:test'
import { reminderText } from '../../src/service/notify/webhooks.ts'
import { readAll } from './env-oracles.ts'
import { runCli, tempDir } from './helpers.ts'

const A = 'a1'.repeat(32)
const R = 'r2'.repeat(32)

/** A loopback webhook that records what it is sent. */
async function webhook(t: { after: (fn: () => Promise<void> | void) => void }): Promise<{ url: string, texts: string[] }> {
  const texts: string[] = []
  const server = http.createServer((req, res) => {
    let body = ''
    req.on('data', (c: Buffer) => { body += c.toString() })
    req.on('end', () => {
      texts.push((JSON.parse(body) as { text: string }).text)
      res.end('ok')
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())))
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`, texts }
}

describe('item 3: symlinks, owner, mode, backups', () => {
  it('a symlinked env file is rewritten at its target; the link stays a link', async (t) => {
    const dir = tempDir(t)
    mkdirSync(path.join(dir, 'shared'))
    const target = path.join(dir, 'shared', 'prod.env')
    writeFileSync(target, `JWT_SECRET=${A}\nJWT_EXPIRATION=15m\n`, { mode: 0o600 })
    const link = path.join(dir, '.env')
    symlinkSync('shared/prod.env', link)
    const r = await runCli(['--env-file', link, 'rotate'])
    assert.equal(r.code, 0, r.stderr)
    assert.ok(lstatSync(link).isSymbolicLink(), 'the link is still a link')
    assert.equal(readlinkSync(link), 'shared/prod.env')
    assert.equal(readAll(target).JWT_SECRET_PREV, A, 'the real file has the rotation')
    assert.match(r.stdout, /rewritten at its target .*shared\/prod\.env/)
    assert.ok(existsSync(`${target}.bak.1`), 'the backup is beside the real file')
  })

  it('keeps owner, group and mode; warns about a group-readable file instead of a silent chmod', { skip: process.getuid?.() !== 0 && 'needs root to give the file another owner' }, async (t) => {
    const dir = tempDir(t)
    const file = path.join(dir, '.env')
    writeFileSync(file, `JWT_SECRET=${A}\n`, { mode: 0o640 })
    chownSync(file, 1234, 4321)
    const r = await runCli(['--env-file', file, 'rotate'])
    assert.equal(r.code, 0, r.stderr)
    const st = statSync(file)
    assert.deepEqual([st.uid, st.gid, st.mode & 0o7777], [1234, 4321, 0o640])
    assert.match(r.stderr, /warning: .*readable by its group \(mode 0640\); rekey kept that mode/)
    assert.equal(statSync(`${file}.bak.1`).mode & 0o777, 0o600)
    readAll(file)
  })

  it('keeps 5 backup generations, each 0600; names the ones holding a retired key; --shred-backups removes them', async (t) => {
    const dir = tempDir(t)
    const file = path.join(dir, '.env')
    writeFileSync(file, `JWT_SECRET=${A}\nJWT_EXPIRATION=15m\n`, { mode: 0o600 })
    for (let i = 0; i < 7; i++) assert.equal((await runCli(['--env-file', file, 'rotate', '--hard'])).code, 0)
    const backups = readdirSync(dir).filter((n) => n.startsWith('.env.bak')).sort()
    assert.deepEqual(backups, ['.env.bak.1', '.env.bak.2', '.env.bak.3', '.env.bak.4', '.env.bak.5'])
    for (const b of backups) assert.equal(statSync(path.join(dir, b)).mode & 0o777, 0o600)
    assert.equal(readAll(path.join(dir, '.env.bak.5')).JWT_SECRET !== A, true, 'the oldest generations are gone')

    const rotated = await runCli(['--env-file', file, 'rotate'])
    assert.equal(rotated.code, 0, rotated.stderr)
    const retired = readAll(file).JWT_SECRET_PREV as string
    const fin = await runCli(['--env-file', file, 'finalize', '--force'])
    assert.equal(fin.code, 0, fin.stderr)
    const holding = backups.filter((b) => readFileSync(path.join(dir, b), 'utf8').includes(retired))
    assert.ok(holding.length >= 2)
    assert.match(fin.stdout, new RegExp(`backups still holding a retired or revoked secret: .*\\.env\\.bak\\.1.*\\(remove them with --shred-backups\\)`))
    assert.ok(!fin.stdout.includes(retired))

    const revoked = readAll(file).JWT_SECRET as string
    const hard = await runCli(['--env-file', file, '--json', 'rotate', '--hard', '--shred-backups'])
    assert.equal(hard.code, 0, hard.stderr)
    const report = JSON.parse(hard.stdout) as { shreddedBackups: string[] }
    assert.ok(report.shreddedBackups.some((b) => b.endsWith('.env.bak.1')), 'the backup just made holds the revoked key: shredded too')
    for (const b of readdirSync(dir).filter((n) => n.startsWith('.env.bak'))) {
      assert.ok(!readFileSync(path.join(dir, b), 'utf8').includes(revoked), `${b} no longer holds the revoked key`)
    }
    assert.ok(!hard.stdout.includes(revoked))
  })
})

describe('item 3: a link planted under a backup\'s name', () => {
  it('is removed, never written through: the file it points at keeps its content', async (t) => {
    const dir = tempDir(t)
    const file = path.join(dir, '.env')
    writeFileSync(file, `JWT_SECRET=${A}\nJWT_EXPIRATION=15m\n`, { mode: 0o600 })
    // Whoever can write to the directory (the app's user) plants links where rekey will shred
    // the oldest generation; rekey (run as root) must not zero the files they point at.
    const victim = path.join(dir, 'elsewhere', 'precious')
    mkdirSync(path.dirname(victim))
    writeFileSync(victim, 'not rekey\'s to shred\n', { mode: 0o644 })
    symlinkSync(victim, path.join(dir, '.env.bak.5'))
    linkSync(victim, path.join(dir, '.env.bak.6'))
    const r = await runCli(['--env-file', file, 'rotate', '--hard'])
    assert.equal(r.code, 0, r.stderr)
    assert.equal(readFileSync(victim, 'utf8'), 'not rekey\'s to shred\n', 'the link target is untouched')
    assert.ok(!existsSync(path.join(dir, '.env.bak.6')) && !readdirSync(dir).includes('.env.bak.5'), 'the planted names are gone')
    assert.equal(readAll(`${file}.bak.1`).JWT_SECRET, A)
  })
})

describe('item 6: both secrets at once; emergency in env-file mode', () => {
  it('rotate --secret all: access and refresh in one write, one backup, one audit row each', async (t) => {
    const dir = tempDir(t)
    const file = path.join(dir, '.env')
    writeFileSync(file, `JWT_ACCESS_SECRET=${A}\nJWT_REFRESH_SECRET=${R}\nJWT_EXPIRATION=15m\nJWT_REFRESH_EXPIRATION=7d\n`, { mode: 0o600 })
    const r = await runCli(['--env-file', file, '--json', 'rotate', '--secret', 'all'])
    assert.equal(r.code, 0, r.stderr)
    const vars = readAll(file)
    assert.equal(vars.JWT_ACCESS_SECRET_PREV, A)
    assert.equal(vars.JWT_REFRESH_SECRET_PREV, R)
    assert.deepEqual(readdirSync(dir).filter((n) => n.startsWith('.env.bak')), ['.env.bak.1'])
    const report = JSON.parse(r.stdout) as { audit: { seqs: number[] }, secrets: { secret: string }[] }
    assert.equal(report.audit.seqs.length, 2)
    assert.deepEqual(report.secrets.map((s) => s.secret), ['JWT_ACCESS_SECRET', 'JWT_REFRESH_SECRET'])
    const audit = await runCli(['--env-file', file, '--json', 'audit'])
    assert.match(audit.stdout, /JWT_ACCESS_SECRET/)
    assert.match(audit.stdout, /JWT_REFRESH_SECRET/)
    const hard = await runCli(['--env-file', file, 'rotate', '--secret', 'all', '--hard'])
    assert.equal(hard.code, 0, hard.stderr)
    const after = readAll(file)
    assert.equal(after.JWT_ACCESS_SECRET_PREV, undefined)
    assert.equal(after.JWT_REFRESH_SECRET_PREV, undefined)
  })

  it('emergency hard-rotates every JWT secret, records it, sends the notice and says what is still to do', async (t) => {
    const hook = await webhook(t)
    const dir = tempDir(t)
    const file = path.join(dir, '.env')
    writeFileSync(file, `JWT_SECRET=${A}\nJWT_REFRESH_SECRET=${R}\nREKEY_WEBHOOK_URL=${hook.url}\n`, { mode: 0o600 })
    const r = await runCli(['--env-file', file, 'emergency', '--reason', 'pushed to a public repo'])
    assert.equal(r.code, 0, r.stderr)
    const vars = readAll(file)
    assert.notEqual(vars.JWT_SECRET, A)
    assert.notEqual(vars.JWT_REFRESH_SECRET, R)
    assert.equal(vars.JWT_SECRET_PREV, undefined)
    assert.match(r.stdout, /reload or restart the app/)
    assert.match(r.stdout, /revoke them all there/)
    assert.match(r.stdout, /force password resets/)
    assert.equal(hook.texts.length, 1)
    assert.match(hook.texts[0] ?? '', /emergency rotation of JWT_SECRET, JWT_REFRESH_SECRET .*reason: pushed to a public repo/)
    for (const text of [r.stdout, r.stderr, ...hook.texts]) assert.ok(!text.includes(A) && !text.includes(vars.JWT_SECRET as string))
    const audit = await runCli(['--env-file', file, '--json', 'audit'])
    assert.equal(audit.stdout.match(/"emergency"/g)?.length, 2, 'one audit row per secret')
  })
})

describe('item 7: an unknown token lifetime is not 15 minutes', () => {
  it('assumes 24 hours, says so in rotate, status and finalize; the environment and --token-lifetime override', async (t) => {
    const dir = tempDir(t)
    const file = path.join(dir, '.env')
    writeFileSync(file, `JWT_SECRET=${A}\n`, { mode: 0o600 })
    const start = Date.parse('2026-06-01T00:00:00Z')
    mock.timers.enable({ apis: ['Date'], now: start })
    t.after(() => mock.timers.reset())
    const r = await runCli(['--env-file', file, 'rotate'])
    assert.equal(r.code, 0, r.stderr)
    assert.match(r.stdout, /token lifetime 24 h \(assumed: no JWT_EXPIRATION \/ JWT_ACCESS_EXPIRATION in .* or the environment, and no --token-lifetime\)/)
    assert.match(r.stdout, /finalize is safe from 2026-06-02T00:01:00.000Z/)
    const status = await runCli(['--env-file', file, 'status'])
    assert.match(status.stdout, /token lifetime {3}24 h \(assumed/)
    mock.timers.setTime(start + 16 * 60_000)
    const early = await runCli(['--env-file', file, 'finalize'])
    assert.equal(early.code, 1, 'an app issuing 1-hour tokens is not cut after 16 minutes')
    assert.match(early.stderr, /ERR_UNSAFE: .*2026-06-02T00:01:00.000Z \(token lifetime assumed/)
    const fromEnv = await runCli(['--env-file', file, 'finalize'], { JWT_EXPIRATION: '1h' })
    assert.equal(fromEnv.code, 1)
    assert.match(fromEnv.stderr, /2026-06-01T01:01:00.000Z/)
    mock.timers.setTime(start + 62 * 60_000)
    const flag = await runCli(['--env-file', file, 'finalize', '--token-lifetime', '1h'])
    assert.equal(flag.code, 0, flag.stderr)
    assert.match(flag.stdout, /token lifetime 1 h \(--token-lifetime\)/)
    assert.equal(readAll(file).JWT_SECRET_PREV, undefined)
  })
})

describe('item 8: notices', () => {
  it('env-file rotate, finalize and rollback send the managed notices', async (t) => {
    const hook = await webhook(t)
    const dir = tempDir(t)
    const file = path.join(dir, '.env')
    writeFileSync(file, `JWT_SECRET=${A}\nJWT_EXPIRATION=15m\n`, { mode: 0o600 })
    const env = { REKEY_WEBHOOK_URL: hook.url }
    assert.equal((await runCli(['--env-file', file, '--operator', 'ops', 'rotate'], env)).code, 0)
    assert.equal(hook.texts.length, 2)
    assert.match(hook.texts[0] ?? '', /rotation of JWT_SECRET started by ops/)
    assert.match(hook.texts[1] ?? '', /rotation of JWT_SECRET completed by ops: [\w-]+ now signs; finalize is safe from /)
    assert.equal((await runCli(['--env-file', file, 'rollback'], env)).code, 0)
    assert.match(hook.texts[2] ?? '', /rekey: rollback of JWT_SECRET by /)
    assert.equal((await runCli(['--env-file', file, 'finalize', '--force'], env)).code, 0)
    assert.match(hook.texts[3] ?? '', /rekey: finalize of JWT_SECRET by .*retired/)
    for (const text of hook.texts) assert.ok(!text.includes(A))
  })

  it('a reminder for a secret due in 5 days says 5 days', () => {
    const now = Date.parse('2026-06-01T00:00:00Z')
    const text = reminderText('JWT_SECRET', 'jwt', 'T-7d', now + 5 * 86_400_000, false, now)
    assert.match(text, /is due for rotation in 5 days/)
    assert.match(reminderText('JWT_SECRET', 'jwt', 'T-7d', now + 7 * 86_400_000, false, now), /in 7 days/)
    assert.match(reminderText('JWT_SECRET', 'jwt', 'T-1d', now + 86_400_000, false, now), /in 1 day /)
  })
})
