/**
 * Side by side on one PostgreSQL (issue 12 item 8): rekey against a hand-written Express +
 * jsonwebtoken + pg app (bench/express-app.ts) and a bare Fastify + fast-jwt route
 * (bench/fastjwt-server.ts), all three up at once and measured in alternating rounds.
 *   refresh: CHAINS concurrent session chains (bench/refresh-chains.ts: each worker sends its
 *            next refresh after the previous answer, with the token that answer returned),
 *            rekey (reuse detection, overlap window, one round trip) vs Express; any answer
 *            but 200 makes the run invalid (exit code 1);
 *   /api/auth/me: ME_CONNECTIONS connections, req/s and p99, rekey vs Express vs Fastify.
 * Besides req/s and p99, each server's CPU time per request (Linux /proc): on a shared machine
 * the req/s bend with the other work, the CPU per request much less.
 * `REKEY_TEST_POSTGRES_URL=... npm run bench:peers`; ROUNDS, DURATION, CHAINS, ME_CONNECTIONS.
 */
import os from 'node:os'
import autocannon from 'autocannon'
import pg from 'pg'
import { runChains } from './refresh-chains.ts'
import { cpuMsOf, startServer, stopServer, type Running } from './server-process.ts'

const DURATION = Number(process.env.DURATION ?? 4)
const ROUNDS = Number(process.env.ROUNDS ?? 3)
const CHAINS = Number(process.env.CHAINS ?? 16)
const ME_CONNECTIONS = Number(process.env.ME_CONNECTIONS ?? 32)
const PG_URL = process.env.REKEY_BENCH_POSTGRES_URL ?? process.env.REKEY_TEST_POSTGRES_URL
if (PG_URL === undefined) throw new Error('set REKEY_TEST_POSTGRES_URL (or REKEY_BENCH_POSTGRES_URL)')




async function json(url: string, body: unknown): Promise<Record<string, string>> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
  if (res.status >= 300) throw new Error(`${url}: ${res.status} ${await res.text()}`)
  return res.status === 204 ? {} : await res.json() as Record<string, string>
}

async function pairs(base: string, n: number, register: boolean): Promise<{ accessToken: string, refreshToken: string }[]> {
  const out = []
  for (let i = 0; i < n; i++) {
    const creds = { email: `chain-${i}-${process.pid}@example.com`, password: 'bench-password-0123456789' }
    if (register) await json(`${base}/api/auth/register`, creds)
    out.push(await json(`${base}/api/auth/login`, creds) as { accessToken: string, refreshToken: string })
  }
  return out
}

async function meRun(base: string, token: string): Promise<autocannon.Result> {
  return await autocannon({ url: `${base}/api/auth/me`, duration: DURATION, connections: ME_CONNECTIONS, headers: { authorization: `Bearer ${token}` } })
}


/** Runs `load` and returns its result with the server's CPU time per request, in µs. */
async function measured<T>(running: Running, load: () => Promise<T>, count: (result: T) => number): Promise<T & { cpuPerRequest: number }> {
  const before = cpuMsOf(running.child.pid)
  const result = await load()
  return { ...result, cpuPerRequest: (cpuMsOf(running.child.pid) - before) * 1000 / Math.max(1, count(result)) }
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number
const secret = 'bench-secret-0123456789abcdef0123456789abcdef'
const refreshSecret = 'bench-refresh-0123456789abcdef0123456789abcd'
const schema = `rekey_peers_${process.pid}`
const admin = new pg.Client({ connectionString: PG_URL })
await admin.connect()
await admin.query(`CREATE SCHEMA ${schema}`)
await admin.query(`CREATE SCHEMA ${schema}_peer`)
const withPath = (s: string): string => `${PG_URL}${PG_URL.includes('?') ? '&' : '?'}options=-c%20search_path%3D${s}`
const servers: Running[] = []
const rows: string[][] = []
const failures: string[] = []
try {
  const rekey = await startServer(['src/cli/main.ts', 'serve'], {
    JWT_ACCESS_SECRET: secret, JWT_REFRESH_SECRET: refreshSecret, REKEY_LOG_LEVEL: 'warn', REKEY_STORE: withPath(schema),
    REKEY_MASTER_KEY: Buffer.alloc(32, 7).toString('base64'), REKEY_RATE_LIMIT_MAX: '1000000', REKEY_RATE_LIMIT_LOGIN_IP: '1000000',
    REKEY_RATE_LIMIT_LOGIN_ACCOUNT: '1000000', REKEY_ARGON2_MEMORY_KIB: '64', REKEY_ARGON2_TIME_COST: '1', REKEY_STORE_POOL_SIZE: '10',
  }, '/api/health/ping')
  servers.push(rekey)
  const peer = await startServer(['bench/express-app.ts'], { JWT_SECRET: secret, JWT_REFRESH_SECRET: refreshSecret, PEER_DATABASE_URL: withPath(`${schema}_peer`) }, '/api/auth/me')
  servers.push(peer)
  const bare = await startServer(['bench/fastjwt-server.ts'], { JWT_SECRET: secret }, '/api/auth/me')
  servers.push(bare)
  const rekeyPairs = await pairs(rekey.url, CHAINS, true)
  const peerPairs = await pairs(peer.url, CHAINS, false)
  const rekeyTokens = rekeyPairs.map((p) => p.refreshToken)
  const peerTokens = peerPairs.map((p) => p.refreshToken)
  const rekeyMeToken = rekeyPairs[0]?.accessToken as string
  const peerMeToken = peerPairs[0]?.accessToken as string
  const list = (): number[] => []
  const r = {
    rekeyRefresh: list(), peerRefresh: list(), rekeyRefreshP99: list(), peerRefreshP99: list(), rekeyRefreshCpu: list(), peerRefreshCpu: list(), rekeyErr: 0, peerErr: 0,
    rekeyMe: list(), peerMe: list(), bareMe: list(), rekeyP99: list(), peerP99: list(), bareP99: list(), rekeyMeCpu: list(), peerMeCpu: list(), bareMeCpu: list(),
  }
  const chains = (running: Running, tokens: string[]) => measured(running, () => runChains(running.url, tokens, DURATION * 1000), (x) => x.refreshes)
  const me = (running: Running, token: string) => measured(running, () => meRun(running.url, token), (x) => x.requests.total)
  for (let round = 0; round < ROUNDS; round++) {
    const a = await chains(rekey, rekeyTokens)
    r.rekeyRefresh.push(a.perSecond)
    r.rekeyRefreshCpu.push(a.cpuPerRequest)
    r.rekeyRefreshP99.push(a.p99)
    r.rekeyErr += a.errors
    failures.push(...(a.firstError === null ? [] : [`rekey refresh, round ${round + 1}: ${a.firstError}`]))
    const b = await chains(peer, peerTokens)
    r.peerRefresh.push(b.perSecond)
    r.peerRefreshCpu.push(b.cpuPerRequest)
    r.peerRefreshP99.push(b.p99)
    r.peerErr += b.errors
    failures.push(...(b.firstError === null ? [] : [`Express refresh, round ${round + 1}: ${b.firstError}`]))
    // The access token of a refreshed chain is still valid: /me verifies signature and claims.
    const c = await me(rekey, rekeyMeToken)
    r.rekeyMe.push(c.requests.average)
    r.rekeyMeCpu.push(c.cpuPerRequest)
    r.rekeyP99.push(c.latency.p99)
    const d = await me(peer, peerMeToken)
    r.peerMe.push(d.requests.average)
    r.peerMeCpu.push(d.cpuPerRequest)
    r.peerP99.push(d.latency.p99)
    const e = await me(bare, peerMeToken)
    r.bareMe.push(e.requests.average)
    r.bareMeCpu.push(e.cpuPerRequest)
    r.bareP99.push(e.latency.p99)
  }
  const f = (n: number): string => n.toFixed(0)
  const ms = (n: number): string => n.toFixed(1)
  const us = (xs: number[]): string => f(median(xs))
  rows.push([`refresh, ${CHAINS} chains: rekey (reuse detection, one round trip)`, f(median(r.rekeyRefresh)), ms(median(r.rekeyRefreshP99)), us(r.rekeyRefreshCpu), String(r.rekeyErr)])
  rows.push([`refresh, ${CHAINS} chains: Express + jsonwebtoken + pg (delete + insert)`, f(median(r.peerRefresh)), ms(median(r.peerRefreshP99)), us(r.peerRefreshCpu), String(r.peerErr)])
  rows.push(['refresh: rekey / Express', `${(median(r.rekeyRefresh) / median(r.peerRefresh)).toFixed(2)}x (target >= 1.2x)`, '', '', ''])
  rows.push([`GET /api/auth/me, ${ME_CONNECTIONS} connections: rekey`, f(median(r.rekeyMe)), String(median(r.rekeyP99)), us(r.rekeyMeCpu), ''])
  rows.push([`GET /api/auth/me, ${ME_CONNECTIONS} connections: Express + jsonwebtoken`, f(median(r.peerMe)), String(median(r.peerP99)), us(r.peerMeCpu), ''])
  rows.push([`GET /api/auth/me, ${ME_CONNECTIONS} connections: bare Fastify + fast-jwt`, f(median(r.bareMe)), String(median(r.bareP99)), us(r.bareMeCpu), ''])
  rows.push(['/me: rekey / Express, rekey / Fastify', `${(median(r.rekeyMe) / median(r.peerMe)).toFixed(2)}x (>= 1.5x), ${(median(r.rekeyMe) / median(r.bareMe)).toFixed(2)}x (>= 1.0x)`, '', '', ''])
} finally {
  for (const s of servers) await stopServer(s).catch(() => {})
  await admin.query(`DROP SCHEMA ${schema} CASCADE`)
  await admin.query(`DROP SCHEMA ${schema}_peer CASCADE`)
  await admin.end()
}
console.log(`peers benchmark: node ${process.version}, ${os.cpus()[0]?.model ?? 'cpu'} x${os.cpus().length}, loadavg ${os.loadavg().map((l) => l.toFixed(1)).join(' ')}, ${ROUNDS} rounds x ${DURATION} s, medians`)
console.log('')
console.log('| case | req/s | p99 ms | server CPU µs/req | errors |')
console.log('| --- | ---: | ---: | ---: | ---: |')
for (const row of rows) console.log(`| ${row.join(' | ')} |`)
if (failures.length > 0) {
  // A refresh chain cannot break in a correct run: the figures above measure something else.
  console.error(`INVALID RUN: ${failures.length} refresh chain(s) broke:\n${failures.join('\n')}`)
  process.exitCode = 1
}
