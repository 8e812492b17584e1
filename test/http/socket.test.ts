/** Tests where the socket or the process matters: rate limits, shutdown, start-up and exit codes. */
import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { connect } from 'node:net'
import { mkdtempSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { describe, test } from 'node:test'
import { startServer } from '../../src/http/server.ts'
import { LogSink, TEST_ARGON2, credentials } from './support.ts'

const ROOT = resolve(import.meta.dirname, '../..')
const NODE = join(ROOT, 'node_modules/.bin/node')
const REKEY = join(ROOT, 'bin/rekey.js')

function post(url: string, body: unknown): Promise<Response> {
  return fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
}

/** Sends raw bytes and reads the whole answer until the server closes (or 5 s pass). */
function rawExchange(url: string, request: string): Promise<string> {
  const { hostname, port } = new URL(url)
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    const socket = connect(Number(port), hostname, () => { socket.end(request) })
    socket.setTimeout(5000, () => { socket.destroy(new Error('no answer')) })
    socket.on('data', (chunk: Buffer) => chunks.push(chunk))
    socket.on('error', (err: NodeJS.ErrnoException) => { if (err.code !== 'ECONNRESET' && err.code !== 'EPIPE') reject(err) })
    socket.on('close', () => { resolve(Buffer.concat(chunks).toString('utf8')) })
  })
}

describe('answers before any route keep the service\'s error shape (real socket)', () => {
  test('431 for oversized headers, 400 for a malformed URL or no Host: { error, message }, not Fastify\'s or Node\'s default body', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'rekey-raw-'))
    const server = await startServer({ env: { REKEY_STORE: join(dir, 'rekey.db') }, cwd: dir, flags: { port: 0 }, logDestination: new LogSink(), overrides: TEST_ARGON2 })
    try {
      const cases: Array<[string, string, number, string]> = [
        ['huge header', `GET /api/health/ping HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`, 431, 'headers_too_large'],
        ['malformed URL', 'GET /% HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', 400, 'bad_request'],
        ['malformed URL under a route prefix', 'GET /api/auth/%zz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', 400, 'bad_request'],
        ['no Host header (HTTP/1.1)', 'GET /api/health/ping HTTP/1.1\r\n\r\n', 400, 'bad_request'],
        ['an empty Host header', 'GET /api/health/ping HTTP/1.1\r\nHost:\r\n\r\n', 400, 'bad_request'],
      ]
      for (const [name, request, status, code] of cases) {
        const answer = await rawExchange(server.url, request)
        const [head = '', payload = ''] = answer.split('\r\n\r\n')
        assert.match(head, new RegExp(`^HTTP/1\\.1 ${status} `), name)
        assert.match(head, /content-type: application\/json/i, name)
        const parsed = JSON.parse(payload) as Record<string, unknown>
        assert.deepEqual(Object.keys(parsed).sort(), ['error', 'message'], name)
        assert.equal(parsed.error, code, name)
        assert.doesNotMatch(payload, /statusCode|FST_ERR|Bad Request"/, name)
      }
      assert.match(await rawExchange(server.url, 'GET /api/health/ping HTTP/1.0\r\n\r\n'), /^HTTP\/1\.1 200 /, 'HTTP/1.0 needs no Host')
      assert.equal((await fetch(`${server.url}/api/health/ping`)).status, 200, 'the service still answers')
    } finally {
      await server.close()
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe('rate limits on a real socket', () => {
  test('login: 429 with Retry-After per (account, address) after failures, then per IP', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'rekey-rl-'))
    const server = await startServer({
      env: { REKEY_STORE: join(dir, 'rekey.db') },
      cwd: dir,
      flags: { port: 0 },
      logDestination: new LogSink(),
      overrides: { ...TEST_ARGON2, 'rateLimit.loginPerAccount': 2, 'rateLimit.loginPerIp': 5 },
    })
    try {
      const a = credentials()
      assert.equal((await post(`${server.url}/api/auth/register`, a)).status, 201)
      assert.equal((await post(`${server.url}/api/auth/login`, a)).status, 200)
      assert.equal((await post(`${server.url}/api/auth/login`, { ...a, password: 'wrong password' })).status, 401)
      assert.equal((await post(`${server.url}/api/auth/login`, { ...a, password: 'wrong password' })).status, 401)
      const limited = await post(`${server.url}/api/auth/login`, a)
      assert.equal(limited.status, 429, 'after 2 failures this address waits for this account, right password or not')
      assert.match(limited.headers.get('retry-after') ?? '', /^\d+$/)
      assert.equal(limited.headers.get('cache-control'), 'no-store')
      assert.deepEqual(Object.keys(await limited.json() as object).sort(), ['error', 'message'])
      // Another account from the same address: allowed until the per-IP budget (5) is spent.
      const b = credentials()
      assert.equal((await post(`${server.url}/api/auth/login`, b)).status, 401)
      const ipLimited = await post(`${server.url}/api/auth/login`, credentials())
      assert.equal(ipLimited.status, 429)
      assert.equal(((await ipLimited.json()) as { error: string }).error, 'rate_limited')
      assert.ok(Number(ipLimited.headers.get('retry-after')) > 0)
      // The account lock is audited once (the per-IP limit is not an account lock).
      const deadline = Date.now() + 2000
      let locks: { notes: string, requestId: string | null, secret: string }[] = []
      while (Date.now() < deadline && locks.length === 0) {
        locks = (await server.service.store.listAudit()).filter((row) => row.method === 'login-lock')
        if (locks.length === 0) await new Promise((resolve) => setTimeout(resolve, 20))
      }
      assert.equal(locks.length, 1)
      assert.equal(locks[0]?.secret, 'login')
      assert.ok(locks[0]?.notes.includes(a.email))
      assert.ok(locks[0]?.notes.includes('127.0.0.1'))
      assert.ok(!locks[0]?.notes.includes(a.password))
      assert.match(locks[0]?.requestId ?? '', /^[0-9a-f-]{36}$/)
    } finally {
      await server.close()
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

interface Spawned {
  child: ChildProcess
  stdout: string[]
  stderr: string[]
  exited: Promise<number | null>
}

function spawnServe(args: string[], cwd: string, env: Record<string, string>): Spawned {
  const child = spawn(NODE, [REKEY, ...args], { cwd, env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  const out: Spawned = { child, stdout: [], stderr: [], exited: new Promise((res) => child.on('exit', (code) => res(code))) }
  let buffer = ''
  child.stdout?.on('data', (chunk: Buffer) => {
    buffer += chunk.toString('utf8')
    const lines = buffer.split('\n')
    buffer = lines.pop() ?? ''
    out.stdout.push(...lines.filter((l) => l !== ''))
  })
  child.stderr?.on('data', (chunk: Buffer) => out.stderr.push(chunk.toString('utf8')))
  return out
}

async function until<T>(fn: () => T | undefined, timeoutMs: number, what: string): Promise<T> {
  const start = Date.now()
  for (;;) {
    const value = fn()
    if (value !== undefined) return value
    if (Date.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 10))
  }
}

function listeningUrl(p: Spawned): string | undefined {
  for (const line of p.stdout) {
    const entry = JSON.parse(line) as { msg?: string, url?: string }
    if (entry.msg?.startsWith('rekey listening on ') === true && entry.url !== undefined) return entry.url
  }
  return undefined
}

describe('rekey serve as a process', () => {
  test('starts with no environment at all: embedded store, generated 0600 master key, a warning', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'rekey-fresh-'))
    const p = spawnServe(['serve', '--port', '0'], dir, {})
    try {
      const url = await until(() => listeningUrl(p), 15_000, 'the listening line')
      assert.match(url, /^http:\/\/127\.0\.0\.1:\d+$/)
      assert.equal(statSync(join(dir, '.rekey/master.key')).mode & 0o777, 0o600)
      assert.match(p.stdout.join('\n'), /production must set REKEY_MASTER_KEY/)
      const creds = credentials()
      assert.equal((await post(`${url}/api/auth/register`, creds)).status, 201)
      const pair = await (await post(`${url}/api/auth/login`, creds)).json() as { accessToken: string }
      const me = await fetch(`${url}/api/auth/me`, { headers: { authorization: `Bearer ${pair.accessToken}` } })
      assert.equal(me.status, 200)
    } finally {
      p.child.kill('SIGTERM')
      await p.exited
      rmSync(dir, { recursive: true, force: true })
    }
  })

  test('SIGTERM drains in-flight requests, then exits 0', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'rekey-term-'))
    // Full-cost argon2: twenty registrations keep the server busy for a while.
    const p = spawnServe(['serve', '--port', '0'], dir, { REKEY_LOG_LEVEL: 'info' })
    try {
      const url = await until(() => listeningUrl(p), 15_000, 'the listening line')
      const before = p.stdout.length
      const inflight = Array.from({ length: 20 }, () => post(`${url}/api/auth/register`, credentials()))
      await until(() => p.stdout.slice(before).filter((l) => l.includes('incoming request')).length >= 20 ? true : undefined, 10_000, 'the requests to arrive')
      p.child.kill('SIGTERM')
      const statuses = await Promise.all(inflight.map(async (r) => (await r).status))
      assert.deepEqual(statuses, Array(20).fill(201), 'every in-flight request completed')
      assert.equal(await p.exited, 0)
      const log = p.stdout.join('\n')
      assert.match(log, /"signal":"SIGTERM"/)
      assert.match(log, /"msg":"stopped"/)
      await assert.rejects(fetch(`${url}/api/health/ping`), 'no longer listening')
    } finally {
      if (p.child.exitCode === null) p.child.kill('SIGKILL')
      rmSync(dir, { recursive: true, force: true })
    }
  })

  test('a bad configuration exits 2 with every problem in one message and no stack trace', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'rekey-cfg-'))
    const p = spawnServe(['serve', '--port', '0'], dir, {
      REKEY_REGISTRATION: 'maybe', JWT_EXPIRATION: 'soon', REKEY_MASTER_KEY: 'c2hvcnQ=', REKEY_STORE: 'postgres://u:hunter2secret@127.0.0.1:1/x',
    })
    try {
      assert.equal(await p.exited, 2)
      const err = p.stderr.join('')
      assert.match(err, /^rekey: ERR_CONFIG: Invalid configuration:/)
      assert.match(err, /REKEY_REGISTRATION must be one of open, closed/)
      assert.match(err, /JWT_EXPIRATION must be a duration/)
      assert.match(err, /REKEY_MASTER_KEY must decode to exactly 32 bytes/)
      assert.doesNotMatch(err, /\n\s+at /, 'no stack trace')
      assert.doesNotMatch(err, /c2hvcnQ|hunter2secret/, 'no secret echoed')
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
