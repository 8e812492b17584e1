/**
 * Real processes for the multi-instance, reload and crash tests and for `bench/rotation.ts`:
 * `rekey serve` instances on free ports, the CLI as a process, a PostgreSQL schema per run,
 * and a bounded load generator that counts every response.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { createServer } from 'node:net'
import { join, resolve } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'

export const ROOT = resolve(import.meta.dirname, '../..')
export const NODE = join(ROOT, 'node_modules/.bin/node')
export const REKEY = join(ROOT, 'bin/rekey.js')

/** Settings every spawned process gets: argon2 at test cost, rate limits out of the way. */
export const FAST_ENV: Readonly<Record<string, string>> = Object.freeze({
  REKEY_ARGON2_MEMORY_KIB: '64',
  REKEY_ARGON2_TIME_COST: '1',
  REKEY_RATE_LIMIT_MAX: '1000000',
  REKEY_RATE_LIMIT_LOGIN_IP: '1000000',
  REKEY_RATE_LIMIT_LOGIN_ACCOUNT: '1000000',
})

const baseEnv = (env: Record<string, string>): Record<string, string> => ({ PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ...FAST_ENV, ...env })

/** A port nobody listens on right now. */
export function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const server = createServer()
    server.once('error', rej)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      const port = typeof address === 'object' && address !== null ? address.port : 0
      server.close(() => res(port))
    })
  })
}

/** A child process with its output collected. */
export interface Proc {
  readonly child: ChildProcess
  readonly stdout: string[]
  readonly stderr: string[]
  readonly exited: Promise<{ code: number | null, signal: NodeJS.Signals | null }>
  /** Resolves once `pattern` appears in stderr (the process's failpoint line) or stdout. */
  waitForOutput(pattern: RegExp, timeoutMs: number): Promise<void>
}

/** Spawns `rekey ARGS` with the pinned Node. */
export function spawnRekey(args: readonly string[], options: { cwd: string, env: Record<string, string> }): Proc {
  const child = spawn(NODE, [REKEY, ...args], { cwd: options.cwd, env: baseEnv(options.env), stdio: ['ignore', 'pipe', 'pipe'] })
  const stdout: string[] = []
  const stderr: string[] = []
  child.stdout?.on('data', (chunk: Buffer) => stdout.push(chunk.toString('utf8')))
  child.stderr?.on('data', (chunk: Buffer) => stderr.push(chunk.toString('utf8')))
  const exited = new Promise<{ code: number | null, signal: NodeJS.Signals | null }>((res) => child.on('exit', (code, signal) => res({ code, signal })))
  return {
    child, stdout, stderr, exited,
    async waitForOutput(pattern, timeoutMs) {
      const start = Date.now()
      let done = false
      void exited.then(() => { done = true })
      while (!pattern.test(stderr.join('')) && !pattern.test(stdout.join(''))) {
        if (done) throw new Error(`the process exited before ${pattern}: ${stderr.join('')}`)
        if (Date.now() - start > timeoutMs) throw new Error(`timed out waiting for ${pattern}: ${stderr.join('')}`)
        await sleep(10)
      }
    },
  }
}

/** Runs `rekey ARGS` to the end: exit code, output, and how long it took. */
export async function runRekey(args: readonly string[], options: { cwd: string, env: Record<string, string> }): Promise<{ code: number | null, stdout: string, stderr: string, ms: number }> {
  const started = Date.now()
  const p = spawnRekey(args, options)
  const { code } = await p.exited
  return { code, stdout: p.stdout.join(''), stderr: p.stderr.join(''), ms: Date.now() - started }
}

/** A running `rekey serve`. */
export interface ServeProc extends Proc {
  readonly url: string
  /** SIGTERM, then SIGKILL after 10 s; resolves with the exit. */
  stop(): Promise<void>
}

/** Starts `rekey [GLOBALS] serve --port P` and waits until it answers `/api/health/ready`. */
export async function startServe(options: { cwd: string, env: Record<string, string>, globals?: readonly string[], args?: readonly string[], timeoutMs?: number }): Promise<ServeProc> {
  for (let attempt = 0; ; attempt++) {
    const port = await freePort()
    const p = spawnRekey([...options.globals ?? [], 'serve', '--port', String(port), ...options.args ?? []], { cwd: options.cwd, env: { REKEY_LOG_LEVEL: 'warn', ...options.env } })
    const url = `http://127.0.0.1:${port}`
    const start = Date.now()
    let exited = false
    void p.exited.then(() => { exited = true })
    for (;;) {
      if (exited) break
      const ok = await fetch(`${url}/api/health/ready`).then((r) => r.status === 200, () => false)
      if (ok) {
        return {
          ...p, url,
          async stop() {
            if (p.child.exitCode !== null || p.child.signalCode !== null) return
            p.child.kill('SIGTERM')
            const timer = setTimeout(() => p.child.kill('SIGKILL'), 10_000)
            await p.exited
            clearTimeout(timer)
          },
        }
      }
      if (Date.now() - start > (options.timeoutMs ?? 20_000)) {
        p.child.kill('SIGKILL')
        throw new Error(`rekey serve did not become ready: ${p.stderr.join('')}`)
      }
      await sleep(50)
    }
    // Exited before answering: the port may have been taken meanwhile; try another once or twice.
    if (attempt >= 2 || !/EADDRINUSE/.test(p.stderr.join('') + p.stdout.join(''))) throw new Error(`rekey serve exited: ${p.stderr.join('')}${p.stdout.join('')}`)
  }
}

/** The JOSE header of a token. */
export function headerOf(token: string): { kid?: string, alg?: string } {
  return JSON.parse(Buffer.from(token.split('.')[0] ?? '', 'base64url').toString('utf8')) as { kid?: string }
}

export interface Credentials { email: string, password: string }
export interface TokenPair { accessToken: string, refreshToken: string }

export function newCredentials(): Credentials {
  return { email: `${randomUUID()}@example.test`, password: `pw-${randomUUID()}` }
}

export async function post(url: string, body: unknown, token?: string): Promise<Response> {
  return fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token === undefined ? {} : { authorization: `Bearer ${token}` }) },
    body: JSON.stringify(body),
  })
}

export async function me(url: string, token: string): Promise<Response> {
  return fetch(`${url}/api/auth/me`, { headers: { authorization: `Bearer ${token}` } })
}

/** Registers and logs in; throws unless both succeed. */
export async function signUp(url: string, creds = newCredentials()): Promise<Credentials & TokenPair> {
  const reg = await post(`${url}/api/auth/register`, creds)
  if (reg.status !== 201) throw new Error(`register answered ${reg.status}`)
  const login = await post(`${url}/api/auth/login`, creds)
  if (login.status !== 200) throw new Error(`login answered ${login.status}`)
  return { ...creds, ...await login.json() as TokenPair }
}

/** One login the load saw: which instance, when it started and ended, which kid signed it. */
export interface LoginSample { readonly instance: number, readonly startedAt: number, readonly endedAt: number, readonly kid: string }

/** What a load run counted. */
export interface LoadReport {
  readonly requests: number
  readonly failures: number
  /** Up to 20 failures: route, instance, status and error code. */
  readonly failureSamples: readonly string[]
  readonly byRoute: Readonly<Record<string, number>>
  readonly logins: readonly LoginSample[]
  readonly elapsedMs: number
}

/**
 * Continuous authenticated traffic across instances: `concurrency` workers, each with its own
 * user, loop login → me → me with the token it got before the run → refresh → me, each
 * request on the next instance round-robin. Every non-2xx answer or network error counts as
 * a failure.
 */
export class Load {
  readonly #urls: readonly string[]
  readonly #users: ReadonlyArray<Credentials & TokenPair>
  readonly #pauseMs: number
  #stopped = false
  #next = 0
  #requests = 0
  #failures = 0
  readonly #samples: string[] = []
  readonly #byRoute: Record<string, number> = {}
  readonly #logins: LoginSample[] = []
  #workers: Promise<void>[] = []
  #started = 0

  /** `pauseMs`: each worker rests this long between rounds (0: as fast as it can). */
  constructor(urls: readonly string[], users: ReadonlyArray<Credentials & TokenPair>, pauseMs = 0) {
    this.#urls = urls
    this.#users = users
    this.#pauseMs = pauseMs
  }

  #instance(): number {
    const i = this.#next % this.#urls.length
    this.#next++
    return i
  }

  async #call(route: string, fn: (url: string) => Promise<Response>): Promise<{ instance: number, body: unknown } | null> {
    const instance = this.#instance()
    const url = this.#urls[instance] as string
    this.#requests++
    this.#byRoute[route] = (this.#byRoute[route] ?? 0) + 1
    try {
      const res = await fn(url)
      const text = await res.text()
      if (res.status >= 200 && res.status < 300) return { instance, body: text === '' ? null : JSON.parse(text) as unknown }
      this.#fail(`${route} on instance ${instance}: ${res.status} ${text.slice(0, 120)}`)
    } catch (err) {
      this.#fail(`${route} on instance ${instance}: ${(err as Error).message}`)
    }
    return null
  }

  #fail(what: string): void {
    this.#failures++
    if (this.#samples.length < 20) this.#samples.push(what)
  }

  async #worker(user: Credentials & TokenPair): Promise<void> {
    const initialAccess = user.accessToken
    let refreshToken = user.refreshToken
    while (!this.#stopped) {
      const startedAt = Date.now()
      const login = await this.#call('login', (url) => post(`${url}/api/auth/login`, { email: user.email, password: user.password }))
      if (login !== null) {
        const pair = login.body as TokenPair
        this.#logins.push({ instance: login.instance, startedAt, endedAt: Date.now(), kid: headerOf(pair.accessToken).kid ?? '' })
        await this.#call('me', (url) => me(url, pair.accessToken))
      }
      // A token issued before the rotations must keep working through all of them.
      await this.#call('me (initial token)', (url) => me(url, initialAccess))
      const refreshed = await this.#call('refresh', (url) => post(`${url}/api/auth/refresh`, { refreshToken }))
      if (refreshed !== null) {
        const pair = refreshed.body as TokenPair
        refreshToken = pair.refreshToken
        await this.#call('me (refreshed)', (url) => me(url, pair.accessToken))
      }
      if (this.#pauseMs > 0) await sleep(this.#pauseMs)
    }
  }

  start(): void {
    this.#started = Date.now()
    this.#workers = this.#users.map((u) => this.#worker(u))
  }

  /** Stops after the requests in flight; the counts. */
  async stop(): Promise<LoadReport> {
    this.#stopped = true
    await Promise.all(this.#workers)
    return {
      requests: this.#requests, failures: this.#failures, failureSamples: [...this.#samples],
      byRoute: { ...this.#byRoute }, logins: [...this.#logins], elapsedMs: Date.now() - this.#started,
    }
  }

  /** Logins seen so far (a live view, for propagation measurements). */
  get logins(): readonly LoginSample[] {
    return this.#logins
  }
}

/** Polls `fn` every `everyMs` until it returns true; the ms it took, or throws after `timeoutMs`. */
export async function until(fn: () => boolean | Promise<boolean>, timeoutMs: number, what: string, everyMs = 10): Promise<number> {
  const start = Date.now()
  while (!await fn()) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await sleep(everyMs)
  }
  return Date.now() - start
}

/** A PostgreSQL URL whose connections use `schema` (created if missing by the caller). */
export function urlWithSchema(url: string, schema: string): string {
  // Encoded by hand: URLSearchParams would write the space as '+'.
  return `${url}${url.includes('?') ? '&' : '?'}options=-c%20search_path%3D${schema}`
}
