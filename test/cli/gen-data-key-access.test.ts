/**
 * `rekey gen --data-key-access`, given hostile or mistaken input: it is not a new secret, so
 * `--bytes` and `--encoding` are refused rather than ignored; it is never written into a
 * variable that holds another secret (the access key would sign tokens, encrypt as an
 * ENCRYPTION_KEY or stand for the master key); and a REKEY_MASTER_KEY that does not open the
 * store's data keys still prints (the documented master-key rollout) but says so on stderr.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { readFileSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { describe, it } from 'node:test'
import { runBin, tempDir } from './helpers.ts'

const KEY = /^[A-Za-z0-9+/]{43}=\n$/
const WRONG_KEY = /warning: the data keys of .* do not open with this access key: REKEY_MASTER_KEY is not the master key they are sealed under/

describe('rekey gen --data-key-access, hostile input', () => {
  it('--bytes and --encoding are refused (exit 2), not silently ignored', async (t) => {
    const dir = tempDir(t)
    const env = { REKEY_STORE: path.join(dir, 'rekey.db'), REKEY_MASTER_KEY: randomBytes(32).toString('base64') }
    for (const extra of [['--bytes', '64'], ['--encoding', 'hex'], ['--encoding', 'base64']]) {
      const r = await runBin(['gen', '--data-key-access', ...extra], { cwd: dir, env })
      assert.equal(r.code, 2, `${extra.join(' ')}: ${r.stdout}`)
      assert.equal(r.stdout, '')
      assert.match(r.stderr, new RegExp(`--data-key-access is not a new secret \\(always 32 bytes, base64\\): ${extra[0]} do(es)? not apply`))
    }
  })

  it('is not written into a variable holding another secret, even empty or with --force', async (t) => {
    const dir = tempDir(t)
    const env = { REKEY_STORE: path.join(dir, 'rekey.db'), REKEY_MASTER_KEY: randomBytes(32).toString('base64') }
    writeFileSync(path.join(dir, 'app.env'), 'PORT=3000\n', { mode: 0o600 })
    for (const name of ['JWT_SECRET', 'ENCRYPTION_KEY', 'REKEY_MASTER_KEY', 'JWT_REFRESH_SECRET']) {
      const r = await runBin(['--env', 'app.env', 'gen', '--data-key-access', '--var', name, '--force'], { cwd: dir, env })
      assert.equal(r.code, 2, `${name}: ${r.stdout}`)
      assert.match(r.stderr, new RegExp(`--data-key-access is not written to ${name}, which holds another secret: write it to REKEY_DATA_KEY_ACCESS`))
    }
    assert.equal(readFileSync(path.join(dir, 'app.env'), 'utf8'), 'PORT=3000\n')
  })

  it('written into an env file: one audit row, but no secret of its own for the inventory (never "due": it changes with the master key)', async (t) => {
    const dir = tempDir(t)
    const store = path.join(dir, 'rekey.db')
    const env = { REKEY_STORE: store, REKEY_MASTER_KEY: randomBytes(32).toString('base64') }
    assert.equal((await runBin(['rotate', '--secret', 'ENCRYPTION_KEY'], { cwd: dir, env })).code, 0)
    writeFileSync(path.join(dir, 'app.env'), 'PORT=3000\n', { mode: 0o600 })
    const written = await runBin(['--env', 'app.env', '--json', 'gen', '--data-key-access', '--var', 'REKEY_DATA_KEY_ACCESS'], { cwd: dir, env })
    assert.equal(written.code, 0, written.stderr)
    const access = /REKEY_DATA_KEY_ACCESS=(\S+)/.exec(readFileSync(path.join(dir, 'app.env'), 'utf8'))?.[1] as string
    const due = await runBin(['--env', 'app.env', '--json', 'due', '--all'], { cwd: dir, env })
    assert.deepEqual((JSON.parse(due.stdout) as { secrets: { name: string }[] }).secrets.map((s) => s.name), ['ENCRYPTION_KEY'])
    const audit = await runBin(['--json', 'audit'], { cwd: dir, env })
    assert.equal(audit.code, 0, audit.stderr)
    assert.match(audit.stdout, /REKEY_DATA_KEY_ACCESS/)
    assert.ok(!audit.stdout.includes(access) && !written.stdout.includes(access) && !written.stderr.includes(access), 'the access key is in an output')
  })

  it('a master key that does not open the store\'s data keys: printed, with a warning; the right one: no warning', async (t) => {
    const dir = tempDir(t)
    const store = path.join(dir, 'rekey.db')
    const master = randomBytes(32).toString('base64')
    assert.equal((await runBin(['rotate', '--secret', 'ENCRYPTION_KEY'], { cwd: dir, env: { REKEY_STORE: store, REKEY_MASTER_KEY: master } })).code, 0)
    const right = await runBin(['gen', '--data-key-access'], { cwd: dir, env: { REKEY_STORE: store, REKEY_MASTER_KEY: master } })
    assert.equal(right.code, 0, right.stderr)
    assert.match(right.stdout, KEY)
    assert.equal(right.stderr, '')
    const other = await runBin(['gen', '--data-key-access'], { cwd: dir, env: { REKEY_STORE: store, REKEY_MASTER_KEY: randomBytes(32).toString('base64') } })
    assert.equal(other.code, 0, other.stderr)
    assert.match(other.stdout, KEY)
    assert.notEqual(other.stdout, right.stdout)
    assert.match(other.stderr, WRONG_KEY)
    assert.doesNotMatch(other.stderr, new RegExp(other.stdout.trim().replace(/[+/=]/g, '\\$&')))
  })
})
