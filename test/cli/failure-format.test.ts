/** Item 3 of issue 15: `--version`, one failure line or one JSON object, kids that begin with `-`, quiet npm. */
import assert from 'node:assert/strict'
import { execFile, spawnSync } from 'node:child_process'
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { describe, test } from 'node:test'
import { runBin, runCli, tempDir } from './helpers.ts'

const ROOT = path.resolve(import.meta.dirname, '../..')
const VERSION = (JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string }).version
const LINE = /^rekey: ERR_[A-Z_]+: [^\n]+\n$/

function assertLine(stderr: string, code: string): void {
  assert.match(stderr, LINE, `one failure line, not: ${stderr}`)
  assert.ok(stderr.startsWith(`rekey: ${code}: `), stderr)
}

function assertJson(stderr: string, code: string): { error: string, message: string, errno?: string } {
  assert.equal(stderr.trimEnd().split('\n').length, 1, `one JSON object on one line, not: ${stderr}`)
  const body = JSON.parse(stderr) as { error: string, message: string, errno?: string }
  assert.equal(body.error, code)
  assert.equal(typeof body.message, 'string')
  return body
}

describe('rekey --version', () => {
  test('prints the package version and exits 0', async () => {
    for (const flag of ['--version', '-V']) {
      const r = await runCli([flag])
      assert.equal(r.code, 0)
      assert.equal(r.stdout, `${VERSION}\n`)
      assert.equal(r.stderr, '')
    }
  })
})

describe('every failure is one line, or one JSON object with --json', () => {
  const usage: [string, string[]][] = [
    ['an unknown command', ['frob']],
    ['a mistyped command', ['rotat']],
    ['an unknown option', ['rotate', '--bogus']],
    ['a missing argument', ['revoke']],
    ['a bad option value', ['serve', '--port', 'eighty']],
    ['too many arguments', ['revoke', 'a', 'b']],
  ]
  for (const [what, argv] of usage) {
    test(`${what}: ERR_USAGE, exit 2`, async () => {
      const human = await runCli(argv)
      assert.equal(human.code, 2)
      assertLine(human.stderr, 'ERR_USAGE')
      assert.match(human.stderr, /\(run rekey --help for usage\)/)
      const json = await runCli(['--json', ...argv])
      assert.equal(json.code, 2)
      assertJson(json.stderr, 'ERR_USAGE')
    })
  }

  test('no store: ERR_CONFIG, exit 2, naming the path', async (t) => {
    const dir = tempDir(t)
    const store = path.join(dir, 'missing.db')
    const human = await runCli(['--store', store, 'status'])
    assert.equal(human.code, 2)
    assertLine(human.stderr, 'ERR_CONFIG')
    assert.ok(human.stderr.includes(`no store at ${store}`))
    assertJson((await runCli(['--json', '--store', store, 'status'])).stderr, 'ERR_CONFIG')
  })

  test('a configuration with several problems is still one line (and the JSON keeps each problem)', async () => {
    const env = { REKEY_PORT: 'x', JWT_EXPIRATION: 'soon' }
    const human = await runCli(['status'], env)
    assert.equal(human.code, 2)
    assertLine(human.stderr, 'ERR_CONFIG')
    assert.match(human.stderr, /REKEY_PORT must be an integer.*; JWT_EXPIRATION must be/)
    const body = assertJson((await runCli(['--json', 'status'], env)).stderr, 'ERR_CONFIG')
    assert.match(body.message, /REKEY_PORT/)
  })

  test('an archive that does not decrypt: ERR_BACKUP_INVALID, exit 1', async (t) => {
    const dir = tempDir(t)
    const archive = path.join(dir, 'rekey-backup.tar.age')
    writeFileSync(archive, 'age-encryption.org/v1\nnot really an archive\n')
    // The archive's MAC is keyed from the master key: without one, both refuse earlier (exit 2).
    const env = { REKEY_BACKUP_PASSPHRASE: 'a passphrase long enough for the test', REKEY_MASTER_KEY: Buffer.alloc(32, 7).toString('base64') }
    for (const argv of [['restore', archive], ['backup', 'verify', archive]]) {
      const human = await runCli(argv, { ...env, REKEY_STORE: path.join(dir, 'restored.db') })
      assert.equal(human.code, 1)
      assertLine(human.stderr, 'ERR_BACKUP_INVALID')
      assertJson((await runCli(['--json', ...argv], { ...env, REKEY_STORE: path.join(dir, 'restored.db') })).stderr, 'ERR_BACKUP_INVALID')
    }
  })

  test('a port in use (EADDRINUSE): ERR_SYSTEM naming the address, from the real binary', async (t) => {
    const blocker = createServer()
    await new Promise<void>((res) => blocker.listen(0, '127.0.0.1', res))
    t.after(() => { blocker.close() })
    const { port } = blocker.address() as { port: number }
    const dir = tempDir(t)
    const env = { REKEY_STORE: path.join(dir, 'rekey.db'), REKEY_SCHEDULER: 'off' }
    const [human, json] = await Promise.all([
      runBin(['serve', '--port', String(port)], { cwd: dir, env }),
      runBin(['--json', 'serve', '--port', String(port)], { cwd: dir, env: { ...env, REKEY_STORE: path.join(dir, 'other.db') } }),
    ])
    assert.equal(human.code, 1)
    assertLine(human.stderr, 'ERR_SYSTEM')
    assert.ok(human.stderr.includes(`127.0.0.1:${port} is already in use`), human.stderr)
    assert.equal(assertJson(json.stderr, 'ERR_SYSTEM').errno, 'EADDRINUSE')
  })

  test('permission denied (EACCES): ERR_SYSTEM naming the path, from the real binary', async (t) => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'rekey-eacces-'))
    t.after(() => rmSync(dir, { recursive: true, force: true }))
    const locked = path.join(dir, 'locked')
    mkdirSync(locked)
    chmodSync(dir, 0o755)
    chmodSync(locked, 0o555)
    const argv = ['--store', path.join(locked, 'rekey.db'), 'serve', '--port', '0']
    const asRoot = process.getuid?.() === 0
    // root may write anywhere: drop to nobody, as a newcomer's own user would be.
    const run = (extra: string[]): ReturnType<typeof spawnSync> => asRoot
      ? spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, path.join(ROOT, 'bin/rekey.js'), ...extra, ...argv], { cwd: dir, encoding: 'utf8', timeout: 60_000 })
      : spawnSync(process.execPath, [path.join(ROOT, 'bin/rekey.js'), ...extra, ...argv], { cwd: dir, encoding: 'utf8', timeout: 60_000 })
    const probe = spawnSync('setpriv', ['--help'])
    if (asRoot && probe.status !== 0) return t.skip('running as root without setpriv: no user to be refused')
    const human = run([])
    assert.equal(human.status, 1, String(human.stderr))
    assertLine(String(human.stderr), 'ERR_SYSTEM')
    assert.match(String(human.stderr), /permission denied \(\w+ .*locked/)
    assert.equal(assertJson(String(run(['--json']).stderr), 'ERR_SYSTEM').errno, 'EACCES')
  })
})

describe('a kid that begins with "-"', () => {
  for (const kid of ['-o9DabQxyzAbcd12', '--9DabQxyzAbcd12']) {
    test(`rekey revoke ${kid} reaches the store, options before or after it`, async (t) => {
      const dir = tempDir(t)
      // A real store, so that the kid is looked up (and not found) rather than refused by the parser.
      const store = path.join(dir, 'rekey.db')
      const { startServer } = await import('../../src/http/server.ts')
      const server = await startServer({ env: { REKEY_STORE: store, REKEY_SCHEDULER: 'off' }, cwd: dir, flags: { port: 0 }, logDestination: { write: () => true } as never })
      await server.close()
      for (const argv of [['revoke', kid], ['revoke', kid, '--reason', 'leak'], ['revoke', '--reason', 'leak', kid], ['--store', store, 'revoke', kid]]) {
        const r = await runCli(argv[0] === '--store' ? argv : ['--store', store, ...argv])
        assert.equal(r.code, 2, r.stderr)
        assertLine(r.stderr, 'ERR_USAGE')
        assert.match(r.stderr, /no key of this store has that kid/)
      }
      // --json after the kid is still an option.
      assertJson((await runCli(['--store', store, 'revoke', kid, '--json'])).stderr, 'ERR_USAGE')
    })
  }

  test('help and mistyped options are still read as such', async () => {
    assert.equal((await runCli(['revoke', '--help'])).code, 0)
    const typo = await runCli(['revoke', '--reasn'])
    assert.notEqual(typo.code, 0)
    assert.match(typo.stderr, /unknown option '--reasn'/)
  })
})

describe('npm prints no EBADENGINE, with the system Node', () => {
  // The system Node: the first `node` on PATH that is not the pinned one in node_modules/.bin.
  const pathDirs = (process.env.PATH ?? '').split(':').filter((d) => d !== '' && !d.includes('node_modules'))
  const env = { ...process.env, PATH: pathDirs.join(':') }
  const systemNode = spawnSync('node', ['--version'], { env, encoding: 'utf8' })

  test(`first npx rekey --version in a checkout, with an empty npm cache (system Node ${systemNode.stdout?.trim() ?? 'absent'})`, async (t) => {
    if (systemNode.status !== 0) return t.skip('no system node on PATH')
    const cache = tempDir(t)
    const r = await new Promise<{ stdout: string, stderr: string, code: number }>((res) => {
      execFile('npx', ['rekey', '--version'], { cwd: ROOT, env: { ...env, npm_config_cache: cache }, timeout: 120_000 }, (err, stdout, stderr) => {
        res({ stdout, stderr, code: err === null ? 0 : Number((err as { code?: unknown }).code ?? 1) })
      })
    })
    assert.equal(r.code, 0, r.stderr)
    assert.equal(r.stdout.trim(), VERSION)
    assert.doesNotMatch(r.stderr, /EBADENGINE|npm warn/)
  })
})
