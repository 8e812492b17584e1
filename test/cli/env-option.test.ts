/**
 * Issue 10, item 5: rekey's options are rekey's. `--env PATH` and `REKEY_ENV_FILE` name the
 * env file in every way rekey is started: the real bin, `npx rekey` in the checkout, and the
 * `node_modules/.bin/rekey` of an installed package (npm pack, unpacked in npm's layout; with
 * REKEY_TEST_NPM_INSTALL=1 also a real npm install into a temp app, which takes minutes).
 * Through npx, Node reads `--env-file` itself (it loads the file into npx's own process,
 * NODE_OPTIONS lines included); `--env` is never read by Node.
 */
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, renameSync, symlinkSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { describe, it } from 'node:test'
import { readAll } from './env-oracles.ts'
import { runBin, tempDir } from './helpers.ts'

const ROOT = path.resolve(import.meta.dirname, '../..')
const SECRET = 'ab'.repeat(32)
const NODE_DIR = path.dirname(process.execPath)

function run(cmd: string, argv: string[], options: { cwd?: string, env?: Record<string, string> } = {}, timeout = 120_000): Promise<{ code: number, stdout: string, stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, argv, { cwd: options.cwd, env: { ...process.env, PATH: `${NODE_DIR}:${process.env.PATH ?? ''}`, npm_config_update_notifier: 'false', ...options.env }, timeout }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1
      resolve({ code, stdout, stderr })
    })
  })
}

/** An env file whose NODE_OPTIONS line leaves a marker if any Node process loads it. */
function trapFile(dir: string): { file: string, marker: string } {
  const marker = path.join(dir, 'node-loaded-the-file')
  const hook = path.join(dir, 'hook.cjs')
  writeFileSync(hook, `require('fs').writeFileSync(${JSON.stringify(marker)}, 'x')\n`)
  const file = path.join(dir, 'app.env')
  writeFileSync(file, `NODE_OPTIONS=--require=${hook}\nJWT_SECRET=${SECRET}\nJWT_EXPIRATION=15m\n`, { mode: 0o600 })
  return { file, marker }
}

describe('item 5: --env and REKEY_ENV_FILE', { concurrency: true }, () => {
  it('the real bin: --env, REKEY_ENV_FILE, --env-file, and a contradiction refused', async (t) => {
    const dir = tempDir(t)
    const { file, marker } = trapFile(dir)
    const viaEnv = await runBin(['--env', file, '--json', 'status'])
    assert.equal(viaEnv.code, 0, viaEnv.stderr)
    assert.equal((JSON.parse(viaEnv.stdout) as { secrets: { phase: string }[] }).secrets[0]?.phase, 'steady')
    const viaVar = await runBin(['rotate'], { env: { REKEY_ENV_FILE: file } })
    assert.equal(viaVar.code, 0, viaVar.stderr)
    assert.equal(readAll(file).JWT_SECRET_PREV, SECRET)
    const missing = await runBin(['--env-file', path.join(dir, 'missing.env'), 'status'])
    assert.equal(missing.code, 2)
    assert.match(missing.stderr, /^rekey: .*missing\.env does not exist/)
    const both = await runBin(['--env', file, '--env-file', path.join(dir, 'other.env'), 'status'])
    assert.equal(both.code, 2)
    assert.match(both.stderr, /name different files/)
    assert.ok(!existsSync(marker), 'no Node process loaded the file as its own environment')
  })

  it('npx rekey --env in the checkout: rekey reads the file, Node does not', async (t) => {
    const dir = tempDir(t)
    const { file, marker } = trapFile(dir)
    const r = await run('npx', ['--no-install', 'rekey', '--env', file, 'status'], { cwd: ROOT })
    assert.equal(r.code, 0, r.stderr)
    assert.match(r.stdout, /JWT_SECRET {2}phase: steady/)
    assert.doesNotMatch(r.stderr, /^node: /m)
    assert.ok(!existsSync(marker), 'the NODE_OPTIONS line of the file did not run in npx\'s Node')
  })

  /** The packed package in `app/node_modules/rekey`, with its bin linked as npm links it; `npm: true` installs with npm itself. */
  async function install(dir: string, npm: boolean): Promise<string> {
    const packed = await run('npm', ['pack', '--ignore-scripts', '--silent', '--pack-destination', dir], { cwd: ROOT })
    assert.equal(packed.code, 0, packed.stderr)
    const tarball = path.join(dir, packed.stdout.trim().split('\n').at(-1) as string)
    const app = path.join(dir, 'app')
    mkdirSync(app)
    writeFileSync(path.join(app, 'package.json'), '{ "name": "app", "version": "1.0.0", "private": true }\n')
    if (npm) {
      const installed = await run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '--ignore-scripts', '--loglevel=error', tarball], { cwd: app }, 400_000)
      assert.equal(installed.code, 0, installed.stderr)
    } else {
      // npm's layout without downloading every dependency: the tarball unpacked as
      // node_modules/rekey, its dependencies resolved from the checkout's node_modules, and
      // node_modules/.bin/rekey a symlink to the package's bin, run through its shebang.
      const untarred = await run('tar', ['-xzf', tarball, '-C', dir])
      assert.equal(untarred.code, 0, untarred.stderr)
      mkdirSync(path.join(app, 'node_modules', '.bin'), { recursive: true })
      renameSync(path.join(dir, 'package'), path.join(app, 'node_modules', 'rekey'))
      symlinkSync(path.join(ROOT, 'node_modules'), path.join(app, 'node_modules', 'rekey', 'node_modules'))
      symlinkSync('../rekey/bin/rekey.js', path.join(app, 'node_modules', '.bin', 'rekey'))
    }
    return app
  }

  for (const npm of [false, true]) {
    const name = npm ? 'npm pack + npm install (REKEY_TEST_NPM_INSTALL=1; 1-3 min: it unpacks ~150 packages)' : 'npm pack, unpacked in npm\'s layout'
    it(`an installed package's node_modules/.bin/rekey: ${name}`, { timeout: 600_000 }, async (t) => {
      if (!existsSync(path.join(ROOT, 'dist', 'cli', 'main.js'))) return t.skip('no dist/: run npm run build first (npm test does)')
      if (npm && process.env.REKEY_TEST_NPM_INSTALL !== '1') return t.skip('set REKEY_TEST_NPM_INSTALL=1 to install with npm itself')
      const dir = tempDir(t)
      const started = Date.now()
      const app = await install(dir, npm)
      t.diagnostic(`installed in ${Date.now() - started} ms`)
      const bin = path.join(app, 'node_modules', '.bin', 'rekey')
      const { file, marker } = trapFile(app)
      const rotated = await run(bin, ['--env', 'app.env', 'rotate', '--secret', 'all'], { cwd: app })
      assert.equal(rotated.code, 0, rotated.stderr)
      assert.equal(readAll(file).JWT_SECRET_PREV, SECRET)
      const missing = await run(bin, ['--env-file', 'missing.env', 'status'], { cwd: app })
      assert.equal(missing.code, 2, 'the installed bin reads --env-file itself (its shebang ends Node\'s options)')
      assert.match(missing.stderr, /^rekey: .*missing\.env does not exist/)
      assert.ok(!existsSync(marker))
      assert.match(readFileSync(file, 'utf8'), /^NODE_OPTIONS=/, 'the other lines are kept')
    })
  }
})
