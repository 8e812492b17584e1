/**
 * Scale benchmark (issue 16): SESSIONS realistic sessions bulk-loaded into PostgreSQL (chains
 * of 1–4 tokens, half expired, 10 % revoked, ~700-byte successor blobs on used tokens, one user
 * per 10 sessions), the refresh key rotated so they all hang on the previous key, then:
 *   - the old full count (countLiveSessionsByKid) against the lease holder's partial-index count;
 *   - GET /metrics and `status` (in process and through the CLI);
 *   - refresh p50/p99 over CHAINS chains while the table is that big;
 *   - pruning rate (ended families, used tokens past the window);
 *   - emergency: time until every instance refuses an old token, time to finish, sessions/s,
 *     and the slowest refresh of a new session during the sweep;
 *   - fan-out with FANOUT instances: rotate → every instance signing; emergency → every
 *     instance refusing.
 * `REKEY_TEST_POSTGRES_URL=... npm run bench:scale` (SESSIONS=10000000 for 10M; FANOUT=2,5,10,20;
 * ALL_LIVE=1 for sessions that are all unexpired and unrevoked, e.g. SESSIONS=5000000 for 5M live families).
 */
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import autocannon from 'autocannon'
import pg from 'pg'
import { auditHasher } from '../src/service/audit/audit-hash.ts'
import { KeyRotation } from '../src/service/keys/rotation.ts'
import { publishLiveSessionCounts, pruneSessions } from '../src/service/sessions/session-maintenance.ts'
import { openStore } from '../src/store/open.ts'
import { me, post, runRekey, signUp, spawnRekey, startServe, type ServeProc } from '../test/multi-instance/cluster.ts'

const SESSIONS = Number(process.env.SESSIONS ?? 1_000_000)
// ALL_LIVE=1: every session unexpired and unrevoked (the emergency target is 5M *live* families).
const ALL_LIVE = process.env.ALL_LIVE === '1'
const CHAINS = Number(process.env.CHAINS ?? 16)
const DURATION = Number(process.env.DURATION ?? 5)
const FANOUT = (process.env.FANOUT ?? '2,5,10,20').split(',').map(Number)
const PG_URL = process.env.REKEY_BENCH_POSTGRES_URL ?? process.env.REKEY_TEST_POSTGRES_URL
if (PG_URL === undefined) throw new Error('set REKEY_TEST_POSTGRES_URL (or REKEY_BENCH_POSTGRES_URL)')
const DAY = 86_400_000

const schema = `rekey_scale_${process.pid}`
const location = `${PG_URL}${PG_URL.includes('?') ? '&' : '?'}options=-c%20search_path%3D${schema}`
const masterKey = randomBytes(32)
const metricsToken = randomBytes(24).toString('hex')
const dir = mkdtempSync(path.join(os.tmpdir(), 'rekey-scale-'))
const env = {
  REKEY_STORE: location, REKEY_MASTER_KEY: masterKey.toString('base64'), REKEY_SCHEDULER: 'off', METRICS_AUTH_TOKEN: metricsToken,
  REKEY_STORE_POOL_SIZE: '2',
}
const rows: string[][] = []
const row = (what: string, value: string, note = ''): void => { rows.push([what, value, note]); console.error(`${what}: ${value} ${note}`) }
const ms = (n: number): string => `${n.toFixed(n < 10 ? 1 : 0)} ms`
const pct = (xs: number[], p: number): number => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))] as number
async function timed<T>(fn: () => Promise<T>): Promise<[T, number]> {
  const t = performance.now()
  const value = await fn()
  return [value, performance.now() - t]
}

/** `rekey emergency` as a process: when it printed that the keys and not-before committed, and its end. */
function emergencyRun(reason: string): { committed: Promise<number>, done: Promise<{ code: number | null, stdout: string, stderr: string, ms: number }> } {
  const startedAt = Date.now()
  // The operator's CLI with a pool of 4: the sweep's two workers, and the count and usage it reports, alongside.
  const p = spawnRekey(['--json', 'emergency', '--reason', reason], { cwd: dir, env: { ...env, REKEY_STORE_POOL_SIZE: '4' } })
  const committed = p.waitForOutput(/keys and not-before committed; 0 session/, 600_000).then(() => Date.now(), () => 0)
  const done = p.exited.then(({ code }) => ({ code, stdout: p.stdout.join(''), stderr: p.stderr.join(''), ms: Date.now() - startedAt }))
  return { committed, done }
}

const admin = new pg.Client({ connectionString: PG_URL })
await admin.connect()
await admin.query(`CREATE SCHEMA ${schema}`)
const instances: ServeProc[] = []
const store = await openStore(PG_URL, { schema, max: 4, statementTimeoutMs: 600_000 })
try {
  instances.push(await startServe({ cwd: dir, env, timeoutMs: 180_000 }))
  const refreshKid = (await store.listKeys('refresh')).find((k) => k.state === 'current')?.kid as string

  // Bulk load, in chunks, straight into the tables the service uses.
  const started = Date.now()
  const users = Math.max(1000, Math.floor(SESSIONS / 10))
  const now = Date.now()
  await admin.query(`SET search_path = ${schema}`)
  await admin.query(`INSERT INTO users (id, email, password_hash, created_at) SELECT 'bu' || g, 'bu' || g || '@bench.test', 'x', $1 FROM generate_series(1, $2::int) g`, [now, users])
  const CHUNK = 200_000
  for (let from = 1; from <= SESSIONS; from += CHUNK) {
    const to = Math.min(SESSIONS, from + CHUNK - 1)
    await admin.query(`INSERT INTO session_families (id, user_id, created_at, expires_at, revoked_at, revoke_reason)
      SELECT 'bf' || g, 'bu' || (1 + g % $4::int),
             $1::bigint - (g % 7) * ${DAY} - 1000,
             CASE WHEN g % 2 = 0 AND NOT $5::boolean THEN $1::bigint - 1000 - (g % 6) * ${DAY} ELSE $1::bigint + ${DAY} + (g % 6) * ${DAY} END,
             CASE WHEN g % 10 = 3 AND NOT $5::boolean THEN $1::bigint - 2 * ${DAY} END,
             CASE WHEN g % 10 = 3 AND NOT $5::boolean THEN 'logout' END
      FROM generate_series($2::int, $3::int) g`, [now, from, to, users, ALL_LIVE])
    await admin.query(`INSERT INTO refresh_tokens (token_hash, family_id, kid, issued_at, expires_at, used_at, successor_hash, parent_hash, successor_blob)
      SELECT md5(f.id || ':' || k) || md5(k || ':' || f.id), f.id, $1, f.created_at + k * 60000, f.expires_at,
             CASE WHEN k < n THEN f.created_at + k * 60000 + 1000 END,
             CASE WHEN k < n THEN md5(f.id || ':' || (k + 1)) || md5((k + 1) || ':' || f.id) END,
             CASE WHEN k > 1 THEN md5(f.id || ':' || (k - 1)) || md5((k - 1) || ':' || f.id) END,
             CASE WHEN k < n THEN repeat(md5(f.id || k), 22) END
      FROM (SELECT id, created_at, expires_at, 1 + (hashtext(id) & 3) AS n FROM session_families
            WHERE id IN (SELECT 'bf' || g FROM generate_series($2::int, $3::int) g)) f,
           LATERAL generate_series(1, f.n) k`, [refreshKid, from, to])
    console.error(`loaded ${to.toLocaleString('en-US')} sessions`)
  }
  await admin.query('ANALYZE')
  const counts = (await admin.query('SELECT (SELECT COUNT(*) FROM session_families) AS f, (SELECT COUNT(*) FROM refresh_tokens) AS t, pg_total_relation_size(\'session_families\') + pg_total_relation_size(\'refresh_tokens\') AS bytes')).rows[0] as { f: string, t: string, bytes: string }
  row('sessions loaded (families / tokens / table+index size)', `${Number(counts.f).toLocaleString('en-US')} / ${Number(counts.t).toLocaleString('en-US')} / ${(Number(counts.bytes) / 2 ** 30).toFixed(2)} GiB`, `in ${((Date.now() - started) / 1000).toFixed(0)} s`)

  // Every session now hangs on the previous refresh key: the worst case for counting.
  const rotated = await runRekey(['--json', 'rotate', '--secret', 'refresh'], { cwd: dir, env })
  if (rotated.code !== 0) throw new Error(rotated.stderr)

  const [, oldCount] = await timed(() => store.countLiveSessionsByKid(Date.now()))
  row('old: countLiveSessionsByKid (every scrape, status, finalize)', ms(oldCount), 'all sessions, both tables')
  const [published, leaseCount] = await timed(() => publishLiveSessionCounts(store, Date.now()))
  row('lease holder: count of the previous refresh kid (partial index)', ms(leaseCount), `${[...published.counts.values()].join(', ')} live; once a tick, one instance`)

  // The bench's own first fetch loads undici (10-20 ms in this process, not the server's time):
  // one ping warms the client; the instance's first /metrics scrape is still among those timed.
  await fetch(`${instances[0]?.url}/api/health/ping`).then((r) => r.text())
  const metricsTimes: number[] = []
  for (let i = 0; i < 20; i++) {
    const [res, t] = await timed(() => fetch(`${instances[0]?.url}/metrics`, { headers: { authorization: `Bearer ${metricsToken}` } }).then((r) => r.text()))
    if (!res.includes('rekey_live_sessions{')) throw new Error('no live-session gauge in /metrics')
    metricsTimes.push(t)
  }
  row('GET /metrics p50 / p99 (20 scrapes)', `${ms(pct(metricsTimes, 0.5))} / ${ms(pct(metricsTimes, 0.99))}`, `target < 20 ms; the instance's first scrape ${ms(metricsTimes[0] as number)}`)
  const rotation = new KeyRotation({ store, masterKey, computeHash: auditHasher(masterKey), accessTokenTtl: 900, refreshTokenTtl: 604_800 })
  const statusTimes: number[] = []
  for (let i = 0; i < 10; i++) statusTimes.push((await timed(() => rotation.status()))[1])
  row('status, in process, p50 / max (10 calls)', `${ms(pct(statusTimes, 0.5))} / ${ms(Math.max(...statusTimes))}`, 'target < 150 ms')
  const cli = await runRekey(['--json', 'status'], { cwd: dir, env })
  row('rekey status (CLI process, start to exit)', ms(cli.ms), cli.code === 0 ? 'includes Node start-up' : `exit ${cli.code}`)

  // Refresh latency over real chains while the tables are that big.
  const chains: string[] = []
  for (let i = 0; i < CHAINS; i++) chains.push((await signUp(instances[0]?.url as string)).refreshToken)
  let next = 0
  const refresh = await autocannon({
    url: `${instances[0]?.url}/api/auth/refresh`, duration: DURATION, connections: CHAINS,
    requests: [{
      method: 'POST', headers: { 'content-type': 'application/json' },
      setupRequest: (req, context) => {
        const c = context as { slot?: number }
        c.slot ??= next++ % chains.length
        return { ...req, body: JSON.stringify({ refreshToken: chains[c.slot] }) }
      },
      onResponse: (status, body, context) => {
        if (status === 200) chains[(context as { slot: number }).slot] = (JSON.parse(body) as { refreshToken: string }).refreshToken
      },
    }],
  })
  row(`refresh, ${CHAINS} chains: req/s, p50 / p99`, `${refresh.requests.average.toFixed(0)}/s, ${refresh.latency.p50} / ${refresh.latency.p99} ms`, `${refresh.non2xx + refresh.errors} errors`)

  // Pruning, as the lease holder does it, for at most 20 s.
  const [pruned, pruneMs] = await timed(() => pruneSessions(store, Date.now(), 20_000))
  row('prune (lease holder, batches of 2000)', `${Math.round(((pruned.families + pruned.tokens) / pruneMs) * 1000).toLocaleString('en-US')} rows/s`, `${pruned.families.toLocaleString('en-US')} families + ${pruned.tokens.toLocaleString('en-US')} tokens in ${(pruneMs / 1000).toFixed(1)} s (budget 20 s)`)

  // The big emergency, with 2 instances: refused everywhere, then the sweep.
  instances.push(await startServe({ cwd: dir, env, timeoutMs: 180_000 }))
  const victim = await signUp(instances[0]?.url as string)
  const fresh = await signUp(instances[0]?.url as string)
  const live = Number((await admin.query('SELECT COUNT(*) AS n FROM session_families WHERE revoked_at IS NULL AND expires_at > $1', [Date.now()])).rows[0].n)
  const emergencyStart = Date.now()
  const run = emergencyRun('scale bench')
  const emergency = run.done
  let refusedAt = 0
  const duringSweep: number[] = []
  for (;;) {
    const statuses = await Promise.all(instances.map((i) => me(i.url, victim.accessToken).then((r) => r.status)))
    if (refusedAt === 0 && statuses.every((s) => s === 401)) refusedAt = Date.now()
    if (refusedAt !== 0) {
      // A new session refreshing while the sweep runs: how long does it wait for a batch?
      const pair = await post(`${instances[0]?.url}/api/auth/login`, { email: fresh.email, password: fresh.password }).then((r) => r.json() as Promise<{ refreshToken: string }>)
      const [res, t] = await timed(() => post(`${instances[1]?.url}/api/auth/refresh`, { refreshToken: pair.refreshToken }))
      if (res.status === 200) duringSweep.push(t)
    }
    const done = await Promise.race([emergency.then(() => true), new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 20))])
    if (done && refusedAt !== 0) break
  }
  const result = await emergency
  if (result.code !== 0) throw new Error(result.stderr)
  const ended = (JSON.parse(result.stdout) as { sessionsEnded: number }).sessionsEnded
  const committedAt = await run.committed
  row('emergency: every instance refuses an old token after', `${refusedAt - emergencyStart} ms from the command's start; ${committedAt === 0 ? '?' : Math.max(0, refusedAt - committedAt)} ms from its commit`, '2 instances; target < 1 s; the start includes Node starting the CLI')
  row('emergency: finished after', `${(result.ms / 1000).toFixed(1)} s`, `${ended.toLocaleString('en-US')} of ${live.toLocaleString('en-US')} live sessions ended, ${Math.round(ended / (result.ms / 1000)).toLocaleString('en-US')}/s overall`)
  const sweepLine = /(\d+) session\(s\) ended, done \((\d+) batch\(es\), (\d+)\/s\)/.exec(result.stderr)
  if (sweepLine !== null) row('emergency sweep rate (heap-page batches of ~5000, 2 workers, HOT updates)', `${Number(sweepLine[3]).toLocaleString('en-US')}/s`, `${sweepLine[2]} batches; target >= 200,000/s`)
  if (duringSweep.length > 0) row('refresh of a new session during the sweep: p50 / max', `${ms(pct(duringSweep, 0.5))} / ${ms(Math.max(...duringSweep))}`, `${duringSweep.length} refreshes`)

  // Fan-out.
  for (const k of FANOUT) {
    while (instances.length < k) instances.push(await startServe({ cwd: dir, env: { ...env, REKEY_STORE_POOL_SIZE: '1' }, timeoutMs: 180_000 }))
    const rot = await runRekey(['--json', 'rotate', '--secret', 'access'], { cwd: dir, env })
    const report = JSON.parse(rot.stdout) as { signingEverywhere: boolean, waitedMs: number }
    const holder = await signUp(instances[0]?.url as string)
    const em = emergencyRun(`fan-out ${k}`)
    let refusedAt = 0
    while (refusedAt === 0) {
      const statuses = await Promise.all(instances.map((i) => me(i.url, holder.accessToken).then((r) => r.status)))
      if (statuses.every((s) => s === 401)) refusedAt = Date.now()
      else await new Promise((resolve) => setTimeout(resolve, 10))
    }
    const emDone = await em.done
    const committed = await em.committed
    row(`fan-out ${k} instances: rotate → every instance signing; emergency → every instance refusing`,
      `${(rot.ms / 1000).toFixed(1)} s (${report.signingEverywhere ? 'all signing' : 'NOT all signing'}); ${committed === 0 ? '?' : Math.max(0, refusedAt - committed)} ms after the commit`, `rotate and emergency processes ${(rot.ms / 1000).toFixed(1)} s and ${(emDone.ms / 1000).toFixed(1)} s, Node start included`)
  }
} finally {
  await Promise.allSettled(instances.map((i) => i.stop()))
  await store.close()
  await admin.query(`DROP SCHEMA ${schema} CASCADE`)
  await admin.end()
  rmSync(dir, { recursive: true, force: true })
}

const load = os.loadavg().map((l) => l.toFixed(1)).join(' ')
console.log(`scale benchmark: ${SESSIONS.toLocaleString('en-US')} sessions${ALL_LIVE ? ' (all live)' : ''}, node ${process.version}, ${os.cpus()[0]?.model ?? 'cpu'} x${os.cpus().length}, PostgreSQL on the same machine, load average at the end ${load}`)
console.log('')
console.log('| measure | value | notes |')
console.log('| --- | ---: | --- |')
for (const r of rows) console.log(`| ${r.join(' | ')} |`)
