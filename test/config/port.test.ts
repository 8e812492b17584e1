/** Where `rekey serve` listens: `--port` > `REKEY_PORT` > `PORT` (what platforms set) > 3000. */
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { describe, test } from 'node:test'
import { loadConfig } from '../../src/config/load.ts'
import { isRekeyError } from '../../src/core/errors.ts'
import { freePort } from '../multi-instance/cluster.ts'

const ROOT = resolve(import.meta.dirname, '../..')
const NODE = join(ROOT, 'node_modules/.bin/node')
const REKEY = join(ROOT, 'bin/rekey.js')

function portOf(env: Record<string, string>, flags: { port?: number } = {}, file?: object): number {
  const cwd = mkdtempSync(join(tmpdir(), 'rekey-port-'))
  try {
    if (file !== undefined) writeFileSync(join(cwd, 'rekey.config.json'), JSON.stringify(file))
    return loadConfig({ env, cwd, flags }).port
  } finally {
    rmSync(cwd, { recursive: true, force: true })
  }
}

/** Starts the real CLI and resolves with the URL of its "rekey listening" line. */
async function serveUrl(t: { after: (fn: () => void) => void }, args: string[], env: Record<string, string>): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'rekey-port-'))
  const child = spawn(NODE, [REKEY, 'serve', ...args], {
    cwd: dir,
    env: { PATH: process.env.PATH ?? '', REKEY_STORE: join(dir, 'rekey.db'), REKEY_SCHEDULER: 'off', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  t.after(() => { child.kill('SIGKILL'); rmSync(dir, { recursive: true, force: true }) })
  let out = ''
  let err = ''
  child.stderr.on('data', (chunk: Buffer) => { err += chunk.toString() })
  return new Promise((res, rej) => {
    const timer = setTimeout(() => rej(new Error(`no listening line in 60 s: ${err}`)), 20_000)
    child.on('exit', (code) => { clearTimeout(timer); rej(new Error(`rekey serve exited ${code}: ${err}`)) })
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString()
      for (const line of out.split('\n')) {
        if (!line.includes('rekey listening on')) continue
        clearTimeout(timer)
        res((JSON.parse(line) as { url: string }).url)
      }
    })
  })
}

describe('the port', () => {
  test('precedence: --port > REKEY_PORT > PORT > rekey.config.json > 3000', () => {
    assert.equal(portOf({}), 3000)
    assert.equal(portOf({}, {}, { port: 4100 }), 4100)
    assert.equal(portOf({ PORT: '5000' }, {}, { port: 4100 }), 5000, 'PORT is the environment: it wins over the file')
    assert.equal(portOf({ PORT: '5000', REKEY_PORT: '6000' }), 6000)
    assert.equal(portOf({ PORT: '5000', REKEY_PORT: '6000' }, { port: 7000 }), 7000)
    assert.equal(portOf({ PORT: '', REKEY_PORT: '' }), 3000, 'an empty variable is unset')
  })

  test('a bad PORT is named in the configuration error', () => {
    try {
      portOf({ PORT: 'eighty' })
      assert.fail('refused')
    } catch (err) {
      assert.ok(isRekeyError(err))
      assert.equal(err.code, 'ERR_CONFIG')
      assert.deepEqual(err.problems, ['PORT must be an integer from 0 to 65535'])
    }
  })

  test('rekey serve listens on PORT when nothing else names a port, and REKEY_PORT wins over it', async (t) => {
    const [port, other, flagged] = [await freePort(), await freePort(), await freePort()]
    // Three processes at once: start-up is the slow part.
    const [url, byRekeyPort, byFlag] = await Promise.all([
      serveUrl(t, [], { PORT: String(port) }),
      serveUrl(t, [], { PORT: '1', REKEY_PORT: String(other) }),
      serveUrl(t, ['--port', String(flagged)], { PORT: '1', REKEY_PORT: '2' }),
    ])
    assert.equal(url, `http://127.0.0.1:${port}`)
    assert.equal((await fetch(`${url}/api/health/ping`)).status, 200)
    assert.equal(byRekeyPort, `http://127.0.0.1:${other}`)
    assert.equal(byFlag, `http://127.0.0.1:${flagged}`)
  })
})
