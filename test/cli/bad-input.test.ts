/**
 * Newcomer leftovers of issue 15: input that would have done harm or failed obscurely is
 * refused with exit 2 and one clear line, and nothing is written: `gen` over a live key, a
 * blank `--operator`, a `--publish-delay` that is no duration in env-file mode, a path that is
 * a directory or a symlink loop, and a `.rekey` beside the env file that is a symbolic link.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { describe, test } from 'node:test'
import { parseEnv } from 'node:util'
import { runBin, runCli, tempDir } from './helpers.ts'

const JWT = randomBytes(32).toString('hex')
const REFRESH = randomBytes(32).toString('hex')
const SMTP = 'smtp-password-0123456789'
const TEXT = `JWT_SECRET=${JWT}\nJWT_REFRESH_SECRET=${REFRESH}\nSMTP_PASSWORD=${SMTP}\nPLACEHOLDER=\n`

function envFile(t: Parameters<typeof tempDir>[0]): { dir: string, file: string } {
  const dir = tempDir(t)
  const file = path.join(dir, '.env')
  writeFileSync(file, TEXT, { mode: 0o600 })
  return { dir, file }
}

/** The file is as written, and rekey created nothing beside it. */
function untouched(dir: string, file: string): void {
  assert.equal(readFileSync(file, 'utf8'), TEXT)
  assert.deepEqual(readdirSync(dir).filter((name) => name !== '.env' && name !== 'elsewhere'), [])
}

describe('rekey gen --var never silently replaces a value', () => {
  for (const [variable, pointer] of [
    ['JWT_SECRET', /JWT_SECRET already holds a live key in \S+: gen would replace it at once and every token it signed would be refused; rotate it instead \(the old key keeps working until finalize\): rekey --env \S+\/\.env rotate; or give --force/],
    ['JWT_REFRESH_SECRET', /JWT_REFRESH_SECRET already holds a live key in .*: rekey --env \S+ rotate --secret refresh; or give --force/],
  ] as const) {
    test(`${variable}: exit 2, pointing at what to do, nothing written`, async (t) => {
      const { dir, file } = envFile(t)
      const r = await runCli(['--env-file', file, 'gen', '--var', variable])
      assert.equal(r.code, 2, r.stderr)
      assert.match(r.stderr, /^rekey: ERR_USAGE: /)
      assert.match(r.stderr, pointer)
      assert.equal(r.stdout, '')
      for (const secret of [JWT, REFRESH, SMTP]) assert.ok(!r.stderr.includes(secret), 'no value in the message')
      untouched(dir, file)
    })
  }

  test('--json: one JSON object', async (t) => {
    const { file } = envFile(t)
    const r = await runCli(['--json', '--env-file', file, 'gen', '--var', 'JWT_SECRET'])
    assert.equal(r.code, 2)
    assert.equal(JSON.parse(r.stderr).error, 'ERR_USAGE')
  })

  test('an empty variable or a new one is written; another value is replaced with a warning; --force replaces a live key', async (t) => {
    const { file } = envFile(t)
    for (const argv of [['--var', 'PLACEHOLDER'], ['--var', 'SESSION_SECRET'], ['--var', 'SMTP_PASSWORD'], ['--var', 'JWT_SECRET', '--force']]) {
      const r = await runCli(['--env-file', file, 'gen', ...argv])
      assert.equal(r.code, 0, `${argv.join(' ')}: ${r.stderr}`)
      const replaced = argv[1] === 'SMTP_PASSWORD' || argv[1] === 'JWT_SECRET'
      assert.equal(/rekey: warning: replaced the value \w+ had in /.test(r.stderr), replaced, `${argv.join(' ')}: ${r.stderr}`)
      for (const secret of [JWT, REFRESH, SMTP]) assert.ok(!`${r.stdout}${r.stderr}`.includes(secret), 'no value printed')
    }
    const vars = parseEnv(readFileSync(file, 'utf8'))
    for (const name of ['PLACEHOLDER', 'SESSION_SECRET', 'SMTP_PASSWORD', 'JWT_SECRET']) assert.match(vars[name] ?? '', /^[0-9a-f]{64}$/, name)
    assert.notEqual(vars.JWT_SECRET, JWT)
    assert.notEqual(vars.SMTP_PASSWORD, SMTP)
    assert.equal(vars.JWT_REFRESH_SECRET, REFRESH)
  })
})

describe('bad flags are refused before anything is read or written', () => {
  for (const operator of ['', ' ', '\t ']) {
    test(`--operator ${JSON.stringify(operator)}: ERR_USAGE, exit 2`, async (t) => {
      const { dir, file } = envFile(t)
      const r = await runCli(['--env-file', file, '--operator', operator, 'gen', '--var', 'NEW_SECRET'])
      assert.equal(r.code, 2)
      assert.match(r.stderr, /^rekey: ERR_USAGE: --operator needs a name \(it is recorded in the audit log\)/)
      untouched(dir, file)
    })
  }

  for (const [flag, value] of [['--publish-delay', 'xx'], ['--publish-delay', '2d'], ['--timeout', 'soon']] as const) {
    test(`env-file rotate ${flag} ${value}: ERR_USAGE, exit 2`, async (t) => {
      const { dir, file } = envFile(t)
      const r = await runCli(['--env-file', file, 'rotate', flag, value])
      assert.equal(r.code, 2, r.stderr)
      assert.match(r.stderr, new RegExp(`^rekey: ERR_USAGE: ${flag} must be a duration`))
      untouched(dir, file)
    })
  }
})

describe('a path that cannot be a file is ERR_CONFIG, exit 2, naming it', () => {
  const masterKey = { REKEY_MASTER_KEY: randomBytes(32).toString('base64') }

  test('an env file that is a loop of symbolic links', async (t) => {
    const dir = tempDir(t)
    symlinkSync(path.join(dir, 'b'), path.join(dir, 'a'))
    symlinkSync(path.join(dir, 'a'), path.join(dir, 'b'))
    for (const argv of [['rotate'], ['gen', '--var', 'X_SECRET'], ['status']]) {
      const r = await runCli(['--env-file', path.join(dir, 'a'), ...argv])
      assert.equal(r.code, 2, `${argv.join(' ')}: ${r.stderr}`)
      assert.match(r.stderr, /^rekey: ERR_CONFIG: \S+\/a is a loop of symbolic links \(\w+\)/)
    }
  })

  test('a store that is a directory, or a loop of symbolic links (rekey serve too)', async (t) => {
    const dir = tempDir(t)
    mkdirSync(path.join(dir, 'store'))
    symlinkSync(path.join(dir, 'b'), path.join(dir, 'a'))
    symlinkSync(path.join(dir, 'a'), path.join(dir, 'b'))
    const status = await runCli(['--store', path.join(dir, 'store'), 'status'], masterKey)
    assert.equal(status.code, 2, status.stderr)
    assert.match(status.stderr, /^rekey: ERR_CONFIG: \S+\/store is a directory \(open\): name a file/)
    const serve = await runBin(['--store', path.join(dir, 'a'), 'serve', '--port', '0'], { cwd: dir, env: masterKey })
    assert.equal(serve.code, 2, serve.stderr)
    assert.match(serve.stderr, /^rekey: ERR_CONFIG: \S+\/a is a loop of symbolic links \(open\)/m)
  })

  test('a .rekey beside the env file (or in the working directory) that is a symbolic link is not followed', async (t) => {
    const { dir, file } = envFile(t)
    mkdirSync(path.join(dir, 'elsewhere'))
    symlinkSync(path.join(dir, 'elsewhere'), path.join(dir, '.rekey'))
    const expected = /^rekey: ERR_CONFIG: .*\.rekey is a symbolic link: rekey does not follow a link to the directory it keeps its store and master\.key in; remove it, or name the store with --store or REKEY_STORE/
    for (const argv of [['--env-file', file, 'gen', '--var', 'NEW_SECRET'], ['--env-file', file, 'rotate'], ['--env-file', file, 'record', 'SMTP_PASSWORD']]) {
      const r = await runCli(argv)
      assert.equal(r.code, 2, `${argv.join(' ')}: ${r.stderr}`)
      assert.match(r.stderr, expected)
    }
    const serve = await runBin(['serve', '--port', '0'], { cwd: dir })
    assert.equal(serve.code, 2, serve.stderr)
    assert.match(serve.stderr, expected)
    assert.deepEqual(readdirSync(path.join(dir, 'elsewhere')), [], 'no store and no master.key where the link points')
    assert.equal(readFileSync(file, 'utf8'), TEXT)
    assert.ok(!existsSync(path.join(dir, '.env.bak.1')))
  })
})
