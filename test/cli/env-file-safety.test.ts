/**
 * Issue 10, items 1, 2 and 4: the real CLI on real files; every result is read with rekey's
 * parser, Node's (process.loadEnvFile) and dotenv, which must agree.
 */
import assert from 'node:assert/strict'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { describe, it, mock } from 'node:test'
import { updateEnvFile } from '../../src/config/env-file.ts'
import { signerCheck } from '../../src/cli/env-mode.ts'
import { envLayout } from '../../src/core/env-rotation.ts'
import { Keyring } from '../../src/index.ts'
import { readAll } from './env-oracles.ts'
import { runBin, runCli, tempDir } from './helpers.ts'

const QUOTED = 'my-"quoted"-passphrase-that-is-long-enough-123'
const OLD = '0123456789abcdef'.repeat(4)

function envFile(t: Parameters<typeof tempDir>[0], text: string): string {
  const file = path.join(tempDir(t), '.env')
  writeFileSync(file, text, { mode: 0o600 })
  return file
}

describe('item 1: round trip through every parser', () => {
  const HEADER = [
    '# production',
    `JWT_SECRET=${QUOTED}`,
    'DATABASE_URL=\'postgres://app:p"a#ss@db/app\'',
    'GREETING="hello world" # a comment',
    'TEMPLATE=`it\'s "quoted"`',
    'PRICE=$5 and ${NOT_EXPANDED}',
    'EMPTY=',
    'WINDOWS_PATH=C:\\temp\\new',
    'UNICODE=pässwörd-🔑',
    '',
  ].join('\n')

  it('rotate, rollback and finalize keep every value exact in rekey, Node and dotenv', async (t) => {
    const file = envFile(t, HEADER)
    const original = readAll(file)
    assert.equal(original.JWT_SECRET, QUOTED)
    const rotated = await runCli(['--env-file', file, 'rotate'])
    assert.equal(rotated.code, 0, rotated.stderr)
    const after = readAll(file)
    assert.equal(after.JWT_SECRET_PREV, QUOTED, 'Node reads the moved passphrase whole (not `my-\\`)')
    for (const key of Object.keys(original).filter((k) => k !== 'JWT_SECRET')) assert.equal(after[key], original[key], key)
    const oldToken = Keyring.fromEnv({ JWT_SECRET: QUOTED }).sign({ sub: 'u' })
    assert.equal(Keyring.fromEnv(after).verify(oldToken).state, 'previous', 'old tokens still verify')

    assert.equal((await runCli(['--env-file', file, 'rollback'])).code, 0)
    const back = readAll(file)
    assert.equal(back.JWT_SECRET, QUOTED)
    assert.equal(back.JWT_SECRET_PREV, after.JWT_SECRET)
    assert.equal((await runCli(['--env-file', file, 'finalize', '--force'])).code, 0)
    const final = readAll(file)
    assert.deepEqual(final, original, 'after rotate, rollback and finalize the file reads as it began')
    assert.equal(readFileSync(file, 'utf8').split('\n')[0], '# production')
  })

  it('gen --var writes a value all three read', async (t) => {
    const file = envFile(t, HEADER)
    assert.equal((await runCli(['--env-file', file, 'gen', '--var', 'SESSION_SECRET'])).code, 0)
    assert.match(readAll(file).SESSION_SECRET ?? '', /^[0-9a-f]{64}$/)
  })

  for (const [name, line, why] of [
    ['an escaped double quote Node does not read', 'API_KEY="abc\\"def"', /line 2: API_KEY has a backslash-escaped quote \(\\"\): Node ends the value at that quote, dotenv does not/],
    ['an unterminated quote', 'API_KEY="abc', /line 2: API_KEY has an unterminated " quote/],
    ['a \\r escape only dotenv reads', 'API_KEY="ab\\rc"', /line 2: API_KEY is read differently/],
    ['text after the closing quote', 'API_KEY="abc" def', /line 2: API_KEY has text after its closing quote/],
    ['a KEY: value line only dotenv reads', 'API_KEY: abc', /line 2: not a KEY=value line/],
  ] as const) {
    it(`refuses a file with ${name}, naming the line, before writing anything`, async (t) => {
      const text = `JWT_SECRET=${OLD}\n${line}\nPORT=1\n`
      const file = envFile(t, text)
      for (const argv of [['rotate'], ['rotate', '--hard'], ['status'], ['gen', '--var', 'X_SECRET']]) {
        const r = await runCli(['--env-file', file, ...argv])
        assert.equal(r.code, 2, `${argv.join(' ')}: ${r.stderr}`)
        assert.match(r.stderr, /^rekey: ERR_CONFIG: /)
        assert.match(r.stderr, why)
        assert.ok(!r.stderr.includes(OLD) && !r.stderr.includes('abc'), 'no value in the message')
      }
      assert.equal(readFileSync(file, 'utf8'), text)
      assert.ok(!existsSync(`${file}.bak.1`), 'not even a backup')
    })
  }

  it('refuses a file that is not valid UTF-8 (a Latin-1 byte in another variable), naming the line, nothing written', async (t) => {
    const bytes = Buffer.concat([Buffer.from(`JWT_SECRET=${OLD}\nPORT=1\nGREETING=caf`), Buffer.from([0xe9]), Buffer.from('\nUNICODE=pässwörd\n')])
    const file = path.join(tempDir(t), '.env')
    writeFileSync(file, bytes, { mode: 0o600 })
    for (const argv of [['rotate'], ['rotate', '--hard'], ['emergency'], ['gen', '--var', 'X_SECRET'], ['status']]) {
      const r = await runBin(['--env', file, ...argv])
      assert.equal(r.code, 2, `${argv.join(' ')}: ${r.stderr}`)
      assert.match(r.stderr, /^rekey: ERR_CONFIG: .*\.env is not valid UTF-8 \(line 3\)/, argv.join(' '))
      assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace')
      assert.ok(!r.stderr.includes(OLD), 'no value in the message')
      assert.deepEqual(readFileSync(file), bytes, `${argv.join(' ')}: the file is untouched, byte for byte`)
    }
    assert.ok(!existsSync(`${file}.bak.1`), 'not even a backup')
  })

  it('refuses a NUL byte anywhere (Node cuts the value there, process.env cannot hold it), naming the line, nothing written', async (t) => {
    for (const [text, line] of [[`PORT=1\nJWT_SECRET=ab\0cd${OLD}\n`, 2], [`JWT_SECRET=${OLD}\n# note\0\nPORT=1\n`, 2], [`JWT_SECRET=${OLD}\nPORT=1\nX=1\0\n`, 3]] as const) {
      const file = envFile(t, text)
      for (const argv of [['rotate'], ['emergency'], ['gen', '--var', 'X_SECRET'], ['status']]) {
        const r = await runBin(['--env', file, ...argv])
        assert.equal(r.code, 2, `${argv.join(' ')}: ${r.stderr}`)
        assert.equal(r.stderr.split('\n').length, 2, r.stderr)
        assert.match(r.stderr, new RegExp(`^rekey: ERR_CONFIG: .*\\.env line ${line} holds a NUL byte`), argv.join(' '))
        assert.ok(!r.stderr.includes(OLD) && !r.stderr.includes('\0'), 'no value in the message')
        assert.equal(readFileSync(file, 'utf8'), text, `${argv.join(' ')}: the file is untouched`)
      }
      assert.ok(!existsSync(`${file}.bak.1`), 'not even a backup')
    }
  })

  it('never writes a NUL: a value holding one has no written form (ERR_CONFIG), the file is untouched', async (t) => {
    const text = `JWT_SECRET=${OLD}\n`
    const file = envFile(t, text)
    await assert.rejects(updateEnvFile(file, { set: { OTHER_SECRET: 'ab\0cd' } }), (err: Error & { code?: string }) => err.code === 'ERR_CONFIG' && /no written form .* or a NUL/.test(err.message))
    assert.equal(readFileSync(file, 'utf8'), text)
    assert.ok(!existsSync(`${file}.bak.1`))
  })

  it('refuses to move a value that no single-line form reads alike, naming its line', async (t) => {
    // A multi-line single-quoted secret holding a double quote: readable, but no one-line form exists.
    const text = `PORT=1\nJWT_SECRET='${'x'.repeat(32)}\nline2"end'\n`
    const file = envFile(t, text)
    assert.equal(readAll(file).JWT_SECRET, `${'x'.repeat(32)}\nline2"end`)
    const r = await runCli(['--env-file', file, 'rotate'])
    assert.equal(r.code, 2, r.stderr)
    assert.match(r.stderr, /ERR_CONFIG: .*line 2: the value for JWT_SECRET_PREV has no written form that rekey, Node's --env-file and dotenv read alike/)
    assert.equal(readFileSync(file, 'utf8'), text)
  })

  it('the real binary, checked by `node --env-file` in a second process', async (t) => {
    const file = envFile(t, HEADER)
    const r = await runBin(['--env', file, 'rotate'])
    assert.equal(r.code, 0, r.stderr)
    const vars = readAll(file)
    const child = await runNode(['--env-file', file, '-e', 'process.stdout.write(JSON.stringify({ prev: process.env.JWT_SECRET_PREV, next: process.env.JWT_SECRET, db: process.env.DATABASE_URL }))'])
    assert.deepEqual(JSON.parse(child), { prev: QUOTED, next: vars.JWT_SECRET, db: 'postgres://app:p"a#ss@db/app' })
  })
})

async function runNode(argv: string[]): Promise<string> {
  const { execFile } = await import('node:child_process')
  return new Promise((resolve, reject) => {
    execFile(process.execPath, argv, { timeout: 30_000 }, (err, stdout) => (err === null ? resolve(stdout) : reject(err)))
  })
}

describe('item 2: duplicates', () => {
  it('a managed variable assigned twice is refused by every command, naming both lines; nothing is written', async (t) => {
    const text = `JWT_SECRET=${OLD}\nPORT=1\nJWT_SECRET=${OLD.toUpperCase()}\n`
    const file = envFile(t, text)
    for (const argv of [['rotate', '--hard'], ['rotate'], ['finalize', '--force'], ['rollback'], ['status'], ['emergency'], ['rotate', '--secret', 'all']]) {
      const r = await runCli(['--env-file', file, ...argv])
      assert.equal(r.code, 2, `${argv.join(' ')}: ${r.stderr}`)
      assert.match(r.stderr, /ERR_CONFIG: .*JWT_SECRET is assigned on lines 1 and 3/)
    }
    assert.equal(readFileSync(file, 'utf8'), text)
    assert.ok(!existsSync(path.join(path.dirname(file), '.rekey')), 'no audit row either')
  })

  it('gen --var refuses a target variable assigned twice', async (t) => {
    const file = envFile(t, `SESSION_SECRET=a\nSESSION_SECRET=b\n`)
    const r = await runCli(['--env-file', file, 'gen', '--var', 'SESSION_SECRET'])
    assert.equal(r.code, 2)
    assert.match(r.stderr, /SESSION_SECRET is assigned on lines 1 and 2/)
  })

  it('every rewrite is read back: a result the check refuses puts the original back (exit 1 code)', async (t) => {
    const text = `JWT_SECRET=${OLD}\n`
    const file = envFile(t, text)
    await assert.rejects(updateEnvFile(file, { set: { JWT_SECRET: 'n'.repeat(64) } }, { verify: () => 'signing kid A, not B' }), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'ERR_CONFLICT')
      assert.match(err.message, /signing kid A, not B.*the original was put back/)
      return true
    })
    assert.equal(readFileSync(file, 'utf8'), text)
  })

  it('the read-back check every CLI rewrite passes (signerCheck) refuses a file whose signing key is not the new one', () => {
    const NEW = 'n'.repeat(64)
    const layout = envLayout({ JWT_SECRET: OLD })
    const planned = [{ layout, plan: { set: { JWT_SECRET: NEW }, remove: [], method: 'rotate', notes: '', signing: NEW }, signs: true }]
    assert.equal(signerCheck({ JWT_SECRET: NEW, JWT_SECRET_PREV: OLD }, planned), undefined)
    // A variable the keyring reads first (here the dual-key convention) leaves the old key signing.
    assert.match(signerCheck({ JWT_SECRET: NEW, JWT_SECRET_CURRENT: OLD }, planned) ?? '', /^JWT_SECRET: the key that signs is kid [\w-]+, not the new kid [\w-]+$/)
    assert.match(signerCheck({ JWT_SECRET: OLD }, planned) ?? '', /not the new kid/)
    const access = envLayout({ JWT_ACCESS_SECRET: OLD }, 'access')
    assert.match(signerCheck({ JWT_ACCESS_SECRET: OLD }, [{ layout: access, plan: { ...planned[0]!.plan, set: { JWT_ACCESS_SECRET: NEW } }, signs: true }]) ?? '', /^JWT_ACCESS_SECRET: the key that signs/)
  })

  it('the audit row names the new kid as the one that signs', async (t) => {
    const file = envFile(t, `JWT_SECRET=${OLD}\n`)
    const r = await runCli(['--env-file', file, '--json', 'rotate', '--hard'])
    assert.equal(r.code, 0, r.stderr)
    const report = JSON.parse(r.stdout) as { keys: { kid: string, state: string }[] }
    const signing = Keyring.fromEnv(readAll(file))
    const token = signing.sign({ sub: 'u' })
    const kid = JSON.parse(Buffer.from(token.split('.')[0] as string, 'base64url').toString()).kid as string
    assert.equal(report.keys.find((k) => k.state === 'current')?.kid, kid)
    const audit = await runCli(['--env-file', file, '--json', 'audit'])
    assert.match(audit.stdout, new RegExp(`signing kid [\\w-]+ -> ${kid}`))
  })
})

describe('item 4: convention traps', () => {
  it('--secret access on a JWT_SECRET file rotates JWT_SECRET and never adds JWT_ACCESS_SECRET', async (t) => {
    const file = envFile(t, `JWT_SECRET=${OLD}\nJWT_EXPIRATION=15m\n`)
    const r = await runCli(['--env-file', file, 'rotate', '--secret', 'access'])
    assert.equal(r.code, 0, r.stderr)
    const vars = readAll(file)
    assert.equal(vars.JWT_ACCESS_SECRET, undefined)
    assert.equal(vars.JWT_SECRET_PREV, OLD)
    assert.notEqual(vars.JWT_SECRET, OLD)
  })

  it('--secret refresh on a JWT_SECRET-only file creates a first JWT_REFRESH_SECRET and warns that an app falling back to JWT_SECRET would switch keys', async (t) => {
    const file = envFile(t, `JWT_SECRET=${OLD}\n`)
    const r = await runCli(['--env-file', file, 'rotate', '--secret', 'refresh'])
    assert.equal(r.code, 0, r.stderr)
    assert.match(r.stderr, /warning: .* has no JWT_REFRESH_SECRET: this creates a first one.*falls back to JWT_SECRET/)
    const vars = readAll(file)
    assert.equal(vars.JWT_SECRET, OLD)
    assert.equal(vars.JWT_REFRESH_SECRET?.length, 64)
    // Rotating it again is an ordinary rotation: no warning.
    const again = await runCli(['--env-file', file, 'rotate', '--secret', 'refresh'])
    assert.equal(again.code, 0, again.stderr)
    assert.doesNotMatch(again.stderr, /has no JWT_REFRESH_SECRET/)
  })

  it('a file mixing JWT_SECRET and JWT_SECRET_CURRENT is refused by every command with the keyring\'s message', async (t) => {
    const text = `JWT_SECRET=${OLD}\nJWT_SECRET_CURRENT=${OLD.toUpperCase()}\n`
    const file = envFile(t, text)
    let keyringMessage = ''
    try {
      Keyring.fromEnv(readAll(file))
    } catch (err) {
      keyringMessage = (err as Error).message
    }
    assert.match(keyringMessage, /set together/)
    for (const argv of [['status'], ['rotate'], ['rotate', '--hard'], ['finalize', '--force'], ['rollback'], ['emergency'], ['gen', '--var', 'OTHER_SECRET'], ['gen', '--var', 'JWT_SECRET_NEW', '--force'],
      ['rotate-db', '--admin-url', 'postgres://nobody@127.0.0.1:1/none'], ['finalize', '--secret', 'DATABASE_URL', '--force']]) {
      const r = await runCli(['--env-file', file, ...argv])
      assert.equal(r.code, 2, `${argv.join(' ')}: ${r.stderr}`)
      assert.equal(r.stderr, `rekey: ERR_CONFIG: ${keyringMessage}\n`)
    }
    assert.equal(readFileSync(file, 'utf8'), text)
  })

  it('gen --var never makes a file mix conventions, nor adds a JWT_ACCESS_SECRET that would shadow the generic secret', async (t) => {
    const staged = `JWT_SECRET_CURRENT=${OLD}\n`
    const file = envFile(t, staged)
    const mixed = await runCli(['--env-file', file, 'gen', '--var', 'JWT_SECRET'])
    assert.equal(mixed.code, 2, mixed.stderr)
    assert.match(mixed.stderr, /^rekey: ERR_CONFIG: JWT_SECRET would make .* mix conventions, which the app refuses \(Invalid access key configuration: .*set together: keep one convention\)/)
    assert.equal(readFileSync(file, 'utf8'), staged)

    const generic = `JWT_SECRET=${OLD}\n`
    const other = envFile(t, generic)
    const oldToken = Keyring.fromEnv(readAll(other)).sign({ sub: 'u' })
    const shadow = await runCli(['--env-file', other, 'gen', '--var', 'JWT_ACCESS_SECRET'])
    assert.equal(shadow.code, 2, shadow.stderr)
    assert.match(shadow.stderr, /JWT_ACCESS_SECRET would take precedence over JWT_SECRET .*rotate --secret access; or give --force/)
    assert.equal(readFileSync(other, 'utf8'), generic)
    assert.ok(!existsSync(`${other}.bak.1`), 'nothing written')
    const forced = await runCli(['--env-file', other, 'gen', '--var', 'JWT_ACCESS_SECRET', '--force'])
    assert.equal(forced.code, 0, forced.stderr)
    assert.throws(() => Keyring.fromEnv(readAll(other)).verify(oldToken), { code: 'ERR_KEY_UNKNOWN' }, 'what --force does: the old tokens are refused')
  })

  it('the dual-key runbook end to end, remembered for the file with --convention current-new', async (t) => {
    const file = envFile(t, `JWT_SECRET=${OLD}\nJWT_EXPIRATION=15m\n`)
    const start = Date.parse('2026-05-01T00:00:00Z')
    mock.timers.enable({ apis: ['Date'], now: start })
    t.after(() => mock.timers.reset())
    const oldToken = Keyring.fromEnv(readAll(file)).sign({ sub: 'u' })

    const r1 = await runCli(['--env-file', file, 'rotate', '--convention', 'current-new'])
    assert.equal(r1.code, 0, r1.stderr)
    const staged = readAll(file)
    assert.equal(staged.JWT_SECRET, undefined)
    assert.equal(staged.JWT_SECRET_CURRENT, OLD, 'CURRENT keeps verifying')
    assert.match(staged.JWT_SECRET_NEW ?? '', /^[0-9a-f]{64}$/)
    assert.equal(staged.JWT_SECRET_ROTATION_DATE, '2026-05-01T00:00:00.000Z')
    const ring = Keyring.fromEnv(staged)
    assert.equal(ring.verify(oldToken).state, 'previous')
    assert.equal(ring.verify(ring.sign({ sub: 'u' })).state, 'current')

    mock.timers.setTime(start + 16 * 60_000 + 1000)
    const fin = await runCli(['--env-file', file, 'finalize'])
    assert.equal(fin.code, 0, fin.stderr)
    const steady = readAll(file)
    assert.equal(steady.JWT_SECRET, staged.JWT_SECRET_NEW, 'finalize collapses to JWT_SECRET=<new>')
    assert.equal(steady.JWT_SECRET_CURRENT, undefined)
    assert.equal(steady.JWT_SECRET_NEW, undefined)

    const r2 = await runCli(['--env-file', file, 'rotate'])
    assert.equal(r2.code, 0, r2.stderr)
    const again = readAll(file)
    assert.equal(again.JWT_SECRET_PREV, undefined, 'the remembered convention, not JWT_SECRET_PREV')
    assert.equal(again.JWT_SECRET_CURRENT, steady.JWT_SECRET)
    assert.match(again.JWT_SECRET_NEW ?? '', /^[0-9a-f]{64}$/)

    const status = await runCli(['--env-file', file, '--json', 'status'])
    assert.match(status.stdout, /"convention":"JWT_SECRET_CURRENT\/JWT_SECRET_NEW"/)
  })
})
