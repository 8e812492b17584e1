/** Item 9 of issue 15: what the docs claim about the CLI, the service's start and the Node pin holds. */
import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { test } from 'node:test'

const ROOT = path.resolve(import.meta.dirname, '..')
const BIN = path.join(ROOT, 'bin/rekey.js')
const doc = (file: string): string => readFileSync(path.join(ROOT, file), 'utf8').replace(/\s+/g, ' ')

test('docs/cli.md: through npx, Node can take --env-file for its own and stop on a missing file', (t) => {
  assert.match(doc('docs/cli.md'), /Node reads `--env-file` too: `npx rekey --env-file \.env rotate` and `node bin\/rekey\.js --env-file \.env \.\.\.` have Node load `\.env` into its own process/)
  const dir = mkdtempSync(path.join(os.tmpdir(), 'rekey-docs-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  mkdirSync(path.join(dir, 'node_modules/.bin'), { recursive: true })
  symlinkSync(BIN, path.join(dir, 'node_modules/.bin/rekey'))
  const env = { ...process.env, PATH: `${path.dirname(process.execPath)}:${process.env.PATH ?? ''}`, npm_config_cache: path.join(dir, '.npm') }
  const viaNpx = spawnSync('npx', ['rekey', 'gen', '--var', 'X', '--env-file', '.env'], { cwd: dir, encoding: 'utf8', env })
  assert.notEqual(viaNpx.status, 0)
  assert.match(viaNpx.stderr, /\.env: not found/)
  // The binary itself, with the same arguments, creates the file.
  const direct = spawnSync(BIN, ['gen', '--var', 'X', '--env-file', '.env'], { cwd: dir, encoding: 'utf8', env })
  assert.equal(direct.status, 0, direct.stderr)
})

test('docs/cli.md and docs/errors.md name every CLI code the failure format uses', () => {
  const cli = doc('docs/cli.md')
  const errors = doc('docs/errors.md')
  for (const code of ['ERR_USAGE', 'ERR_REFUSED', 'ERR_INTERNAL', 'ERR_SYSTEM', 'ERR_BACKUP_INVALID']) {
    assert.ok(errors.includes(`\`${code}\``), `${code} in docs/errors.md`)
  }
  assert.match(cli, /Every failure prints exactly one line on stderr, `rekey: ERR_CODE: message`/)
  assert.doesNotMatch(cli, /so that Node does not take rekey's `--env-file` option/)
})

test('docs/service.md: the last start-up line is "rekey listening on" with the URL, after Fastify\'s own', async (t) => {
  assert.match(doc('docs/service.md'), /the last of which is `\{"msg":"rekey listening on http:\/\/HOST:PORT","url":\.\.\.\}`/)
  const dir = mkdtempSync(path.join(os.tmpdir(), 'rekey-docs-'))
  const child = spawn(process.execPath, [BIN, 'serve', '--port', '0'], { cwd: dir, env: { PATH: process.env.PATH ?? '', REKEY_SCHEDULER: 'off' }, stdio: ['ignore', 'pipe', 'pipe'] })
  t.after(() => { child.kill('SIGKILL'); rmSync(dir, { recursive: true, force: true }) })
  const lines = await new Promise<string[]>((resolve, reject) => {
    let out = ''
    const timer = setTimeout(() => reject(new Error('no listening line in 60 s')), 60_000)
    child.stdout.on('data', (c: Buffer) => {
      out += c.toString()
      if (/rekey listening on [^\n]*\n/.test(out)) {
        clearTimeout(timer)
        resolve(out.trim().split('\n'))
      }
    })
  })
  const entries = lines.map((l) => JSON.parse(l) as { msg: string, url?: string })
  const last = entries[entries.length - 1]
  assert.match(last?.msg ?? '', /^rekey listening on http:\/\/127\.0\.0\.1:\d+$/)
  assert.equal(last?.url, (last?.msg ?? '').slice('rekey listening on '.length))
  assert.ok(entries.some((e) => e.msg.startsWith('Server listening at')), 'Fastify logs its own line, as the doc says')
  assert.ok(entries.length > 1, 'more than one line, as the doc says')
})

test('README: no "every test" claim; the Node pin is scoped to the checkout\'s scripts', () => {
  const readme = doc('README.md')
  assert.doesNotMatch(readme, /every test/)
  assert.match(readme, /pins Node 24 \(the `node` devDependency\) for its own scripts only/)
  const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { engines: { node: string }, devDependencies: Record<string, string> }
  assert.equal(pkg.engines.node, '>=22.12')
  assert.match(pkg.devDependencies.node ?? '', /^\^24\./)
})

test('docs/crypt.md: every rekey command names the env file with --env, and the leak response shreds the real backup names', () => {
  const crypt = readFileSync(path.join(ROOT, 'docs/crypt.md'), 'utf8')
  // docs/cli.md promises that every example uses --env: through npx, Node takes --env-file itself.
  assert.doesNotMatch(crypt, /rekey --env-file/)
  assert.match(crypt, /npx rekey --env \.env gen --var ENCRYPTION_KEY/)
  // Backups are generations .env.bak.1..N: a `shred -u .env.bak` finds no such file.
  assert.doesNotMatch(crypt, /shred -u\s+\.env\.bak`/)
  assert.match(crypt.replace(/\s+/g, ' '), /finalize --secret ENCRYPTION_KEY --shred-backups/)
})
