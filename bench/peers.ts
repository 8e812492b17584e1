/**
 * Side by side on one PostgreSQL (issue 12 item 8): rekey against a hand-written Express +
 * jsonwebtoken + pg app (bench/express-app.ts) and a bare Fastify + fast-jwt route
 * (bench/fastjwt-server.ts), all three up at once and measured in alternating rounds.
 *   refresh: CHAINS concurrent session chains (bench/refresh-chains.ts: each worker sends its
 *            next refresh after the previous answer, with the token that answer returned),
 *            rekey (reuse detection, overlap window, one round trip) vs Express; any answer
 *            but 200 makes the run invalid (exit code 1);
 *   /api/auth/me: ME_CONNECTIONS connections, req/s and p99, rekey vs Express vs Fastify.
 * `REKEY_TEST_POSTGRES_URL=... npm run bench:peers`; ROUNDS, DURATION, CHAINS, ME_CONNECTIONS.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import autocannon from 'autocannon'
import pg from 'pg'
import { runChains } from './refresh-chains.ts'

const ROOT = path.resolve(import.meta.dirname, '..')
const DURATION = Number(process.env.DURATION ?? 4)
const ROUNDS = Number(process.env.ROUNDS ?? 3)
const CHAINS = Number(process.env.CHAINS ?? 16)
const ME_CONNECTIONS = Number(process.env.ME_CONNECTIONS ?? 32)
const PG_URL = process.env.REKEY_BENCH_POSTGRES_URL ?? process.env.REKEY_TEST_POSTGRES_URL
if (PG_URL === undefined) throw new Error('set REKEY_TEST_POSTGRES_URL (or REKEY_BENCH_POSTGRES_URL)')

interface Running { url: string, child: ChildProcess }

async function freePort(): Promise<number> {
  const server = net.createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as net.AddressInfo
  await new Promise((resolve) => server.close(resolve))
  return port
}

async function start(args: string[], env: Record<string, string>, probe: string): Promise<Running> {
  const port = await freePort()
  const child = spawn(process.execPath, [...args, ...(args[0]?.includes('main.ts') ? ['--port', String(port)] : [])], { cwd: ROOT, env: { ...process.env, ...env, PORT: String(port) }, stdio: ['ignore', 'ignore', 'pipe'] })
  let err = ''
  child.stderr?.on('data', (c: Buffer) => { err += c.toString() })
  const url = `http://127.0.0.1:${port}`
  const deadline = Date.now() + 30_000
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`server exited with ${child.exitCode}: ${err.slice(-500)}`)
    try {
      await fetch(`${url}${probe}`)
      return { url, child }
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
  }
  child.kill('SIGKILL')
  throw new Error(`server did not start: ${err.slice(-500)}`)
}

async function stop(running: Running): Promise<void> {
  const exited = new Promise((resolve) => running.child.once('exit', resolve))
  running.child.kill('SIGTERM')
  await exited
}

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
  const rekey = await start(['src/cli/main.ts', 'serve'], {
    JWT_ACCESS_SECRET: secret, JWT_REFRESH_SECRET: refreshSecret, REKEY_LOG_LEVEL: 'warn', REKEY_STORE: withPath(schema),
    REKEY_MASTER_KEY: Buffer.alloc(32, 7).toString('base64'), REKEY_RATE_LIMIT_MAX: '1000000', REKEY_RATE_LIMIT_LOGIN_IP: '1000000',
    REKEY_RATE_LIMIT_LOGIN_ACCOUNT: '1000000', REKEY_ARGON2_MEMORY_KIB: '64', REKEY_ARGON2_TIME_COST: '1', REKEY_STORE_POOL_SIZE: '10',
  }, '/api/health/ping')
  servers.push(rekey)
  const peer = await start(['bench/express-app.ts'], { JWT_SECRET: secret, JWT_REFRESH_SECRET: refreshSecret, PEER_DATABASE_URL: withPath(`${schema}_peer`) }, '/api/auth/me')
  servers.push(peer)
  const bare = await start(['bench/fastjwt-server.ts'], { JWT_SECRET: secret }, '/api/auth/me')
  servers.push(bare)
  const rekeyPairs = await pairs(rekey.url, CHAINS, true)
  const peerPairs = await pairs(peer.url, CHAINS, false)
  const rekeyTokens = rekeyPairs.map((p) => p.refreshToken)
  const peerTokens = peerPairs.map((p) => p.refreshToken)
  const rekeyMeToken = rekeyPairs[0]?.accessToken as string
  const peerMeToken = peerPairs[0]?.accessToken as string
  const r = { rekeyRefresh: [] as number[], peerRefresh: [] as number[], rekeyRefreshP99: [] as number[], peerRefreshP99: [] as number[], rekeyErr: 0, peerErr: 0, rekeyMe: [] as number[], peerMe: [] as number[], bareMe: [] as number[], rekeyP99: [] as number[], peerP99: [] as number[], bareP99: [] as number[] }
  for (let round = 0; round < ROUNDS; round++) {
    const a = await runChains(rekey.url, rekeyTokens, DURATION * 1000)
    r.rekeyRefresh.push(a.perSecond)
    r.rekeyRefreshP99.push(a.p99)
    r.rekeyErr += a.errors
    failures.push(...(a.firstError === null ? [] : [`rekey refresh, round ${round + 1}: ${a.firstError}`]))
    const b = await runChains(peer.url, peerTokens, DURATION * 1000)
    r.peerRefresh.push(b.perSecond)
    r.peerRefreshP99.push(b.p99)
    r.peerErr += b.errors
    failures.push(...(b.firstError === null ? [] : [`Express refresh, round ${round + 1}: ${b.firstError}`]))
    // The access token of a refreshed chain is still valid: /me verifies signature and claims.
    const c = await meRun(rekey.url, rekeyMeToken)
    r.rekeyMe.push(c.requests.average)
    r.rekeyP99.push(c.latency.p99)
    const d = await meRun(peer.url, peerMeToken)
    r.peerMe.push(d.requests.average)
    r.peerP99.push(d.latency.p99)
    const e = await meRun(bare.url, peerMeToken)
    r.bareMe.push(e.requests.average)
    r.bareP99.push(e.latency.p99)
  }
  const f = (n: number): string => n.toFixed(0)
  const ms = (n: number): string => n.toFixed(1)
  rows.push([`refresh, ${CHAINS} chains: rekey (reuse detection, one round trip)`, f(median(r.rekeyRefresh)), ms(median(r.rekeyRefreshP99)), String(r.rekeyErr)])
  rows.push([`refresh, ${CHAINS} chains: Express + jsonwebtoken + pg (delete + insert)`, f(median(r.peerRefresh)), ms(median(r.peerRefreshP99)), String(r.peerErr)])
  rows.push(['refresh: rekey / Express', `${(median(r.rekeyRefresh) / median(r.peerRefresh)).toFixed(2)}x (target >= 1.2x)`, '', ''])
  rows.push([`GET /api/auth/me, ${ME_CONNECTIONS} connections: rekey`, f(median(r.rekeyMe)), String(median(r.rekeyP99)), ''])
  rows.push([`GET /api/auth/me, ${ME_CONNECTIONS} connections: Express + jsonwebtoken`, f(median(r.peerMe)), String(median(r.peerP99)), ''])
  rows.push([`GET /api/auth/me, ${ME_CONNECTIONS} connections: bare Fastify + fast-jwt`, f(median(r.bareMe)), String(median(r.bareP99)), ''])
  rows.push(['/me: rekey / Express, rekey / Fastify', `${(median(r.rekeyMe) / median(r.peerMe)).toFixed(2)}x (>= 1.5x), ${(median(r.rekeyMe) / median(r.bareMe)).toFixed(2)}x (>= 1.0x)`, '', ''])
} finally {
  for (const s of servers) await stop(s).catch(() => {})
  await admin.query(`DROP SCHEMA ${schema} CASCADE`)
  await admin.query(`DROP SCHEMA ${schema}_peer CASCADE`)
  await admin.end()
}
console.log(`peers benchmark: node ${process.version}, ${os.cpus()[0]?.model ?? 'cpu'} x${os.cpus().length}, loadavg ${os.loadavg().map((l) => l.toFixed(1)).join(' ')}, ${ROUNDS} rounds x ${DURATION} s, medians`)
console.log('')
console.log('| case | req/s | p99 ms | errors |')
console.log('| --- | ---: | ---: | ---: |')
for (const row of rows) console.log(`| ${row.join(' | ')} |`)
if (failures.length > 0) {
  // A refresh chain cannot break in a correct run: the figures above measure something else.
  console.error(`INVALID RUN: ${failures.length} refresh chain(s) broke:\n${failures.join('\n')}`)
  process.exitCode = 1
}
