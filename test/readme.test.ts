/**
 * The README runs as written: every code block of "Adopt the keyring" is extracted and run, in
 * order, in a new directory outside the repository, as a newcomer would type it. The only
 * substitutions: `npm install` links the packages of this checkout (rekey itself, and its
 * development copy of the others) instead of downloading them, and the example's port is
 * replaced by a free one (the machine is shared). A `js` block whose first line names a file
 * (`// app.js`) is written to that file; any other `js` block is an excerpt and only has to
 * parse. `sh` blocks run in one bash session under `set -euo pipefail`.
 */
import assert from 'node:assert/strict'
import { execFileSync, spawn } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { describe, it } from 'node:test'
import jsonwebtoken from 'jsonwebtoken'
import { freePort } from './multi-instance/cluster.ts'

const ROOT = path.resolve(import.meta.dirname, '..')
const README = readFileSync(path.join(ROOT, 'README.md'), 'utf8')

interface Block { lang: string, code: string }

/** The fenced blocks of the section whose heading starts with `heading`. */
function blocksOf(heading: string): Block[] {
  const start = README.indexOf(`## ${heading}`)
  assert.ok(start >= 0, `the README has a section "${heading}"`)
  const next = README.indexOf('\n## ', start + 3)
  const section = README.slice(start, next < 0 ? undefined : next)
  return [...section.matchAll(/```(\w+)\n([\s\S]*?)```/g)].map((m) => ({ lang: m[1] as string, code: m[2] as string }))
}

/** `npm install a b`: links from this checkout, the packages' bins included. */
function linkInstall(names: string[]): string {
  const lines = ['mkdir -p node_modules/.bin']
  for (const name of names) {
    const source = name === 'rekey' ? ROOT : path.join(ROOT, 'node_modules', name)
    assert.ok(existsSync(path.join(source, 'package.json')), `${name} is available in the checkout`)
    lines.push(`ln -sfn ${JSON.stringify(source)} node_modules/${name}`)
    const pkg = JSON.parse(readFileSync(path.join(source, 'package.json'), 'utf8')) as { bin?: string | Record<string, string> }
    const bins = typeof pkg.bin === 'string' ? { [name]: pkg.bin } : pkg.bin ?? {}
    for (const [bin, file] of Object.entries(bins)) lines.push(`ln -sfn ${JSON.stringify(path.join(source, file))} node_modules/.bin/${bin}`)
  }
  return lines.join('\n')
}

describe('README', () => {
  it('shows the two set-up commands', () => {
    assert.match(README, /npm install && npm start/)
    assert.match(README, /npm test/)
  })

  it('mentions REKEY_BACKUP_PASSPHRASE where it shows rekey backup', () => {
    const line = README.split('\n').findIndex((l) => l.includes('rekey backup'))
    assert.ok(line >= 0)
    const near = README.split('\n').slice(Math.max(0, line - 3), line + 4).join('\n')
    assert.match(near, /REKEY_BACKUP_PASSPHRASE/)
  })

  it('"Adopt the keyring": every block runs as written in a new directory, and a rotation keeps old tokens valid', async (t) => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'rekey-readme-'))
    t.after(() => { if (process.env.REKEY_README_DEBUG !== '1') rmSync(dir, { recursive: true, force: true }) })
    const port = await freePort()
    const blocks = blocksOf('Adopt the keyring')
    const example = /\b3001\b/g
    let script = 'set -euo pipefail\ntrap \'kill $(jobs -p) 2>/dev/null || true\' EXIT\n'
    let files = 0
    for (const block of blocks) {
      if (block.lang === 'js') {
        const named = /^\/\/ ([\w.-]+\.m?js)\n/.exec(block.code)
        if (named === null) {
          // An excerpt: it has to parse, not to run.
          execFileSync(process.execPath, ['--check', '-'], { input: block.code })
          continue
        }
        writeFileSync(path.join(dir, named[1] as string), block.code)
        files++
        continue
      }
      assert.ok(block.lang === 'sh', `a ${block.lang} block is not expected here`)
      for (const line of block.code.split('\n')) {
        const install = /^npm install ((?:[\w@/.-]+ ?)+?)\s*(#.*)?$/.exec(line)
        script += `${install === null ? line.replace(example, String(port)) : linkInstall((install[1] as string).trim().split(/\s+/))}\n`
      }
    }
    assert.ok(files >= 1, 'the section has a runnable file')
    // What the session leaves for the checks below.
    script += 'printf "README_TOKEN=%s\\n" "$TOKEN"\n'
    writeFileSync(path.join(dir, 'readme.sh'), script)
    if (process.env.REKEY_README_DEBUG === '1') process.stderr.write(`README script in ${dir}\n`)

    const env: Record<string, string> = {
      PATH: `${path.dirname(process.execPath)}:${process.env.PATH ?? ''}`,
      HOME: dir,
      npm_config_cache: path.join(dir, '.npm'),
      PORT: String(port),
    }
    const run = await new Promise<{ code: number | null, stdout: string, stderr: string }>((resolve) => {
      const child = spawn('bash', ['readme.sh'], { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'] })
      let stdout = ''
      let stderr = ''
      child.stdout.on('data', (c: Buffer) => { stdout += c.toString() })
      child.stderr.on('data', (c: Buffer) => { stderr += c.toString() })
      const timer = setTimeout(() => child.kill('SIGKILL'), 90_000)
      child.on('exit', (code) => { clearTimeout(timer); resolve({ code, stdout, stderr }) })
    })
    assert.equal(run.code, 0, `the README commands ran: ${run.stderr}`)
    assert.match(run.stdout, /\{"sub":"user-1","iat":\d+,"exp":\d+\}/, 'the protected route answered the token from login')
    const token = /README_TOKEN=(\S+)/.exec(run.stdout)?.[1] ?? ''
    assert.ok(token.split('.').length === 3, 'a token came back from login')

    // After `rotate`, the README says: restart the app; tokens signed before still verify.
    const vars = Object.fromEntries(readFileSync(path.join(dir, '.env'), 'utf8').split('\n')
      .map((l) => /^(\w+)=(.*)$/.exec(l)).filter((m) => m !== null).map((m) => [m[1], m[2]?.replace(/^"|"$/g, '')]))
    assert.ok(vars.JWT_SECRET !== undefined && vars.JWT_SECRET_PREV !== undefined, 'rotate left JWT_SECRET and JWT_SECRET_PREV')
    const app = spawn(process.execPath, ['--env-file=.env', 'app.js'], { cwd: dir, env, stdio: 'ignore' })
    t.after(() => { app.kill() })
    const base = `http://127.0.0.1:${port}`
    for (let i = 0; ; i++) {
      try {
        await fetch(base)
        break
      } catch {
        if (i > 300) throw new Error('the restarted app did not listen')
        await new Promise((r) => setTimeout(r, 100))
      }
    }
    const me = (bearer: string): Promise<Response> => fetch(`${base}/api/me`, { headers: { authorization: `Bearer ${bearer}` } })
    assert.equal((await me(token)).status, 200, 'a token of before the rotation verifies after the restart')
    // Tokens another library signed with the old secret, as before adopting rekey.
    assert.equal((await me(jsonwebtoken.sign({ sub: 'legacy' }, vars.JWT_SECRET_PREV as string, { expiresIn: '15m' }))).status, 200)
    const forged = await me(jsonwebtoken.sign({ sub: 'x' }, 'another-secret-0123456789abcdef0123456789'))
    assert.equal(forged.status, 401)
    assert.equal(forged.headers.get('www-authenticate'), 'Bearer error="invalid_token"')
  })
})
