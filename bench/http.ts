/**
 * HTTP benchmark: the service in its own process, autocannon in this one.
 *   (a) GET /api/auth/me through rekey against a bare Fastify + fast-jwt route
 *   (b) refresh throughput on SQLite and on PostgreSQL (REKEY_BENCH_POSTGRES_URL or REKEY_TEST_POSTGRES_URL)
 *   (c) login throughput (bounded by argon2id by design)
 *   (d) RSS of the service at idle and after 100k sessions
 * Prints a markdown table. `npm run bench:http`; DURATION=10 for longer runs.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import autocannon from 'autocannon'
import pg from 'pg'
import { randomBytes, randomUUID } from 'node:crypto'
import { openStore } from '../src/store/open.ts'
import { cpuMsOf, startServer, stopServer } from './server-process.ts'

const DURATION = Number(process.env.DURATION ?? 5)
const CONNECTIONS = Number(process.env.CONNECTIONS ?? 20)
const SESSIONS = Number(process.env.SESSIONS ?? 100_000)
const ROUNDS = Number(process.env.ROUNDS ?? 3)
const PG_URL = process.env.REKEY_BENCH_POSTGRES_URL ?? process.env.REKEY_TEST_POSTGRES_URL





function rssOf(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) * 1024
}

async function post(url: string, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number, json: Record<string, unknown> }> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) })
  const text = await res.text()
  return { status: res.status, json: text === '' ? {} : JSON.parse(text) as Record<string, unknown> }
}

function medianRun(runs: autocannon.Result[]): autocannon.Result {
  return [...runs].sort((a, b) => a.requests.average - b.requests.average)[Math.floor(runs.length / 2)] as autocannon.Result
}

async function load(opts: autocannon.Options): Promise<autocannon.Result> {
  return await autocannon({ duration: DURATION, connections: CONNECTIONS, ...opts })
}

async function userTokens(base: string, email: string): Promise<{ accessToken: string, refreshToken: string }> {
  const password = 'bench-password-0123456789'
  await post(`${base}/api/auth/register`, { email, password })
  const login = await post(`${base}/api/auth/login`, { email, password })
  if (login.status !== 200) throw new Error(`login failed: ${login.status}`)
  return login.json as { accessToken: string, refreshToken: string }
}

/** Refresh under load: every request refreshes a fresh token from a pool prepared beforehand. */
async function refreshRun(base: string, label: string): Promise<Record<string, string>> {
  const email = `refresh-${label}@example.com`
  const first = await userTokens(base, email)
  let token = first.refreshToken
  const result = await load({
    url: `${base}/api/auth/refresh`,
    connections: 1,
    pipelining: 1,
    requests: [{
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      setupRequest: (req) => ({ ...req, body: JSON.stringify({ refreshToken: token }) }),
      onResponse: (status, body) => { if (status === 200) token = (JSON.parse(body) as { refreshToken: string }).refreshToken },
    }],
  })
  return { case: `refresh (${label}, one session chain)`, 'req/s': result.requests.average.toFixed(0), 'p99 ms': String(result.latency.p99), errors: String(result.non2xx + result.errors) }
}

const rows: Record<string, string>[] = []
const dir = mkdtempSync(path.join(os.tmpdir(), 'rekey-bench-'))
const secret = 'bench-secret-0123456789abcdef0123456789abcdef'
const refreshSecret = 'bench-refresh-0123456789abcdef0123456789abcd'
const baseEnv = { JWT_SECRET: secret, JWT_REFRESH_SECRET: refreshSecret, REKEY_LOG_LEVEL: 'warn', REKEY_STORE: path.join(dir, 'rekey.db'), REKEY_MASTER_KEY: Buffer.alloc(32, 7).toString('base64'), REKEY_RATE_LIMIT_MAX: '1000000', REKEY_RATE_LIMIT_LOGIN_IP: '1000000', REKEY_RATE_LIMIT_LOGIN_ACCOUNT: '1000000' }

try {
  // (a) /api/auth/me: rekey against fast-jwt on bare Fastify.
  const rekey = await startServer(['src/cli/main.ts', 'serve'], baseEnv)
  const idleRss = rssOf(rekey.child.pid as number)
  const { accessToken } = await userTokens(rekey.url, 'me@example.com')
  // Both servers up at once, measured in alternating rounds, medians reported: this machine's
  // speed drifts more than the difference being measured.
  const bare = await startServer(['bench/fastjwt-server.ts'], { JWT_SECRET: secret })
  const meRuns: autocannon.Result[] = []
  const bareRuns: autocannon.Result[] = []
  // Server CPU per request too: with client and server on one 2-core machine, req/s also
  // measures how the two share the cores; CPU time per request is the server's own cost.
  const meCpu: number[] = []
  const bareCpu: number[] = []
  for (let round = 0; round < ROUNDS; round++) {
    for (const [server, runs, cpu] of [[rekey, meRuns, meCpu], [bare, bareRuns, bareCpu]] as const) {
      const before = cpuMsOf(server.child.pid as number)
      const result = await load({ url: `${server.url}/api/auth/me`, headers: { authorization: `Bearer ${accessToken}` } })
      runs.push(result)
      cpu.push(((cpuMsOf(server.child.pid as number) - before) * 1000) / result.requests.total)
    }
  }
  await stopServer(bare)
  const me = medianRun(meRuns)
  const baseline = medianRun(bareRuns)
  rows.push({ case: `GET /api/auth/me, rekey (median of ${ROUNDS})`, 'req/s': me.requests.average.toFixed(0), 'p99 ms': String(me.latency.p99), errors: String(me.non2xx + me.errors) })
  rows.push({ case: `GET /api/auth/me, bare Fastify + fast-jwt (median of ${ROUNDS})`, 'req/s': baseline.requests.average.toFixed(0), 'p99 ms': String(baseline.latency.p99), errors: String(baseline.non2xx + baseline.errors) })
  const medianOf = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number
  rows.push({ case: 'server CPU per /me request, rekey / bare', 'req/s': `${medianOf(meCpu).toFixed(0)} µs / ${medianOf(bareCpu).toFixed(0)} µs`, 'p99 ms': '', errors: '' })
  rows.push({ case: 'rekey / fast-jwt route', 'req/s': `${(me.requests.average / baseline.requests.average).toFixed(2)}x (target >= 0.9x)`, 'p99 ms': '', errors: '' })

  // (b) refresh on SQLite.
  rows.push(await refreshRun(rekey.url, 'SQLite'))

  // (c) login: argon2id by design.
  const password = 'bench-password-0123456789'
  const loginResult = await load({
    url: `${rekey.url}/api/auth/login`, connections: 4, method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email: 'me@example.com', password }),
  })
  rows.push({ case: 'POST /api/auth/login (argon2id m=19 MiB t=2)', 'req/s': loginResult.requests.average.toFixed(0), 'p99 ms': String(loginResult.latency.p99), errors: String(loginResult.non2xx + loginResult.errors) })

  // (d) RSS after many sessions: families written straight into the service's store (logins
  // would take hours at argon2 speed), then the service serves traffic over them.
  const store = await openStore(baseEnv.REKEY_STORE)
  const user = await store.getUserByEmail('me@example.com')
  if (user === null) throw new Error('bench user missing')
  const now = Date.now()
  for (let i = 0; i < SESSIONS; i++) {
    await store.createFamily({
      familyId: randomUUID(), userId: user.id, createdAt: now, expiresAt: now + 7 * 86_400_000,
      token: { tokenHash: randomBytes(32).toString('hex'), kid: 'bench', issuedAt: now, expiresAt: now + 7 * 86_400_000 },
    })
  }
  await store.close()
  await load({ url: `${rekey.url}/api/auth/me`, headers: { authorization: `Bearer ${accessToken}` }, duration: 2 })
  rows.push({ case: 'RSS idle', 'req/s': `${(idleRss / 2 ** 20).toFixed(0)} MiB`, 'p99 ms': '', errors: '' })
  rows.push({ case: `RSS after ${SESSIONS.toLocaleString('en-US')} sessions and load`, 'req/s': `${(rssOf(rekey.child.pid as number) / 2 ** 20).toFixed(0)} MiB`, 'p99 ms': '', errors: '' })
  await stopServer(rekey)

  // (b) refresh on PostgreSQL, in a fresh schema.
  if (PG_URL !== undefined) {
    const schema = `rekey_bench_${process.pid}`
    const admin = new pg.Client({ connectionString: PG_URL })
    await admin.connect()
    await admin.query(`CREATE SCHEMA ${schema}`)
    try {
      const url = new URL(PG_URL)
      url.searchParams.set('options', `-c search_path=${schema}`)
      const onPg = await startServer(['src/cli/main.ts', 'serve'], { ...baseEnv, REKEY_STORE: url.toString() })
      rows.push(await refreshRun(onPg.url, 'PostgreSQL'))
      await stopServer(onPg)
    } finally {
      await admin.query(`DROP SCHEMA ${schema} CASCADE`)
      await admin.end()
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true })
}

console.log(`http benchmark: node ${process.version}, ${os.cpus()[0]?.model ?? 'cpu'} x${os.cpus().length}, ${DURATION} s per run, ${CONNECTIONS} connections`)
console.log('')
console.log('| case | req/s | p99 ms | errors |')
console.log('| --- | ---: | ---: | ---: |')
for (const row of rows) console.log(`| ${row.case} | ${row['req/s']} | ${row['p99 ms']} | ${row.errors} |`)
