/**
 * Test servers: a temp SQLite store (or a given one), logs captured in memory, a clock the
 * test moves, argon2 at test cost, generous rate limits unless a test sets them.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { LightMyRequestResponse } from 'fastify'
import { startServer, type RunningServer, type StartServerOptions } from '../../src/http/server.ts'
import type { Clock } from '../../src/service/clock.ts'

/** argon2id at the lowest cost the schema accepts: tests only (production uses OWASP's). */
export const TEST_ARGON2 = { 'argon2.memoryCost': 64, 'argon2.timeCost': 1 }

/** A clock the test moves by hand. */
export class TestClock implements Clock {
  #now: number
  constructor(start = Date.now()) {
    this.#now = start
  }
  now(): number {
    return this.#now
  }
  advance(ms: number): void {
    this.#now += ms
  }
}

/** Every log line a server wrote, raw. */
export class LogSink {
  readonly lines: string[] = []
  write(line: string): void {
    this.lines.push(line)
  }
  get text(): string {
    return this.lines.join('')
  }
  parsed(): Array<Record<string, unknown>> {
    return this.lines.map((l) => JSON.parse(l) as Record<string, unknown>)
  }
}

export interface TestServer extends RunningServer {
  readonly clock: TestClock
  readonly logs: LogSink
  readonly dir: string
  request(method: string, url: string, options?: { body?: unknown, token?: string, headers?: Record<string, string>, payload?: string }): Promise<LightMyRequestResponse>
  stop(): Promise<void>
}

/** A server on a fresh temp store (unless `options.env.REKEY_STORE` or a store is given), not listening. */
export async function testServer(options: StartServerOptions & { dir?: string } = {}): Promise<TestServer> {
  const dir = options.dir ?? mkdtempSync(join(tmpdir(), 'rekey-http-'))
  const clock = options.clock instanceof TestClock ? options.clock : new TestClock()
  const logs = new LogSink()
  const env = { REKEY_STORE: join(dir, 'rekey.db'), REKEY_LOG_LEVEL: 'debug', ...options.env }
  const server = await startServer({
    listen: false,
    cwd: dir,
    logDestination: logs,
    storeOptions: { pollIntervalMs: 50 },
    ...options,
    env,
    clock,
    overrides: { ...TEST_ARGON2, 'rateLimit.max': 100_000, 'rateLimit.loginPerIp': 100_000, 'rateLimit.loginPerAccount': 100_000, ...options.overrides },
  })
  return {
    ...server,
    clock,
    logs,
    dir,
    request(method, url, opts = {}) {
      const headers: Record<string, string> = { ...opts.headers }
      if (opts.token !== undefined) headers.authorization = `Bearer ${opts.token}`
      return server.app.inject({
        method: method as 'GET',
        url,
        headers,
        ...(opts.body === undefined ? {} : { payload: opts.body as object }),
        ...(opts.payload === undefined ? {} : { payload: opts.payload }),
      })
    },
    async stop() {
      await server.close()
      if (options.dir === undefined) rmSync(dir, { recursive: true, force: true })
    },
  }
}

let counter = 0
/** A unique email and a password for it. */
export function credentials(): { email: string, password: string } {
  counter++
  return { email: `user${counter}-${process.pid}@example.test`, password: `pw-${counter}-${Math.random().toString(36).slice(2)}-long` }
}

/** Registers and logs in; returns the credentials and the token pair. */
export async function signedIn(server: TestServer): Promise<{ email: string, password: string, id: string, accessToken: string, refreshToken: string }> {
  const creds = credentials()
  const reg = await server.request('POST', '/api/auth/register', { body: creds })
  if (reg.statusCode !== 201) throw new Error(`register: ${reg.statusCode} ${reg.body}`)
  const login = await server.request('POST', '/api/auth/login', { body: creds })
  if (login.statusCode !== 200) throw new Error(`login: ${login.statusCode} ${login.body}`)
  const pair = login.json() as { accessToken: string, refreshToken: string }
  return { ...creds, id: (reg.json() as { id: string }).id, ...pair }
}

/** The payload of a JWT, unverified. */
export function claimsOf(token: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8')) as Record<string, unknown>
}

export function headerOf(token: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split('.')[0] ?? '', 'base64url').toString('utf8')) as Record<string, unknown>
}
