/**
 * What a hostile review of the merged tree found on paths that touch secrets, each driven
 * through the real CLI on real files: a non-regular "env file", a JWK-list file, an archive
 * error that quoted the file it was given, and a wrong master key on the env-file audit path.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { execFileSync } from 'node:child_process'
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { describe, test } from 'node:test'
import { parseEnv } from 'node:util'
import dotenv from 'dotenv'
import { runCli, tempDir } from './helpers.ts'

const SECRET = randomBytes(32).toString('hex')

describe('attacks on the env-file and backup paths', () => {
  test('a FIFO or a directory named as the env file is refused (exit 2, ERR_CONFIG) and left as it is', async (t) => {
    const dir = tempDir(t)
    const fifo = path.join(dir, 'fifo.env')
    execFileSync('mkfifo', [fifo])
    const folder = path.join(dir, 'folder.env')
    mkdirSync(folder)
    for (const target of [fifo, folder]) {
      const r = await runCli(['--env', target, 'rotate'])
      assert.equal(r.code, 2, r.stderr)
      assert.match(r.stderr, /^rekey: ERR_CONFIG: .* is not a regular file/)
    }
    assert.ok(statSync(fifo).isFIFO(), 'the FIFO is still a FIFO')
    assert.ok(statSync(folder).isDirectory())
  })

  test('a comment after a rewritten value stays on its line, and Node and dotenv read the new values', async (t) => {
    const dir = tempDir(t)
    const file = path.join(dir, '.env')
    writeFileSync(file, `JWT_SECRET=${SECRET} # signing key\nENCRYPTION_KEY="${SECRET}" # data key\nOTHER=x\n`, { mode: 0o600 })
    for (const argv of [['rotate'], ['rotate', '--secret', 'ENCRYPTION_KEY']]) {
      const r = await runCli(['--env', file, ...argv])
      assert.equal(r.code, 0, r.stderr)
    }
    const text = readFileSync(file, 'utf8')
    assert.match(text, /^JWT_SECRET=[0-9a-f]{64} # signing key$/m)
    assert.match(text, /^ENCRYPTION_KEY="?[0-9a-f]{64}"? # data key$/m)
    const node = parseEnv(text)
    assert.deepEqual(dotenv.parse(text), node)
    assert.equal(node.JWT_SECRET_PREV, SECRET)
    assert.equal(node.ENCRYPTION_KEY_PREV, SECRET)
    assert.match(node.JWT_SECRET ?? '', /^[0-9a-f]{64}$/)
  })

  test('a JWT_KEYS file is refused by rotate, --secret access and emergency; the file is unchanged', async (t) => {
    const dir = tempDir(t)
    const file = path.join(dir, '.env')
    const k = randomBytes(32).toString('base64url')
    const text = `JWT_KEYS='{"keys":[{"kid":"k1","kty":"oct","alg":"HS256","k":"${k}","status":"current"}]}'\n`
    writeFileSync(file, text, { mode: 0o600 })
    for (const argv of [['rotate'], ['rotate', '--secret', 'access'], ['emergency', '--secret', 'access', '--reason', 'test']]) {
      const r = await runCli(['--env', file, ...argv])
      assert.equal(r.code, 2, `${argv.join(' ')}: ${r.stderr}`)
      assert.match(r.stderr, /ERR_CONFIG: .*JWT_KEYS/)
    }
    assert.equal(readFileSync(file, 'utf8'), text)
  })

  test('restore and backup verify of a file that is no archive never print its content', async (t) => {
    const dir = tempDir(t)
    const file = path.join(dir, '.env')
    writeFileSync(file, `JWT_SECRET=${SECRET}\n`)
    const env = { REKEY_BACKUP_PASSPHRASE: 'a passphrase long enough for the test', REKEY_MASTER_KEY: randomBytes(32).toString('base64'), REKEY_STORE: path.join(dir, 'store.db') }
    for (const argv of [['restore', file], ['backup', 'verify', file], ['--json', 'backup', 'verify', file]]) {
      const r = await runCli(argv, env)
      assert.equal(r.code, 1, r.stderr)
      assert.match(r.stderr, /ERR_BACKUP_INVALID/)
      assert.ok(!`${r.stdout}${r.stderr}`.includes(SECRET), `${argv.join(' ')} printed the file's content`)
    }
  })

  test('a wrong REKEY_MASTER_KEY on an env-file store is refused before any row is written; the chain stays intact', async (t) => {
    const dir = tempDir(t)
    const file = path.join(dir, '.env')
    writeFileSync(file, `JWT_SECRET=${SECRET}\n`, { mode: 0o600 })
    const first = await runCli(['--env', file, 'record', 'SMTP_PASSWORD'])
    assert.equal(first.code, 0, first.stderr)
    const wrong = { REKEY_MASTER_KEY: randomBytes(32).toString('base64') }
    for (const argv of [['record', 'SMTP_PASSWORD'], ['rotate'], ['gen', '--var', 'API_TOKEN']]) {
      const r = await runCli(['--env', file, ...argv], wrong)
      assert.equal(r.code, 2, `${argv.join(' ')}: ${r.stderr}`)
      assert.match(r.stderr, /ERR_CONFIG: the master key does not verify the audit log/)
    }
    assert.equal(readFileSync(file, 'utf8'), `JWT_SECRET=${SECRET}\n`, 'the file was not rewritten')
    const verify = await runCli(['--env', file, 'audit', '--verify'])
    assert.equal(verify.code, 0, verify.stderr)
    assert.match(verify.stdout, /audit chain intact: 1 rows?/)
  })
})
