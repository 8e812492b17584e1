/**
 * Usage evidence from every verifier, on real processes: two `rekey serve` instances and a
 * library app (`Keyring.fromJwks` with `usage`) report to one PostgreSQL schema; an env-file
 * app (`Keyring.fromEnv` under `node --env-file`) reports to the SQLite store beside its file.
 * `finalize` is refused while any of them verified an old-key token in the last 5 minutes,
 * naming how many and where; `rekey status` shows each process and when it last reported;
 * `--force` overrides. The CLI runs 160 s "later" (test/support/warp-clock.ts) so the time
 * rule (JWT_EXPIRATION 90 s + 60 s skew) has passed and only the evidence speaks.
 */
import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import { join, resolve } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { parse } from 'dotenv'
import { Keyring } from '../../../src/index.ts'
import { openStore } from '../../../src/store/open.ts'
import type { Store } from '../../../src/store/store.ts'
import { headerOf, me, NODE, post, runRekey, signUp, startServe, until, urlWithSchema, type ServeProc } from '../../multi-instance/cluster.ts'
import { queryOnce } from '../../store/support/stores.ts'

const POSTGRES = process.env.REKEY_TEST_POSTGRES_URL
const WARP = resolve(import.meta.dirname, '../../support/warp-clock.ts')
const APP = resolve(import.meta.dirname, '../../support/library-app.ts')
const LATER = { REKEY_TEST_CLOCK_OFFSET_MS: String(160_000), NODE_OPTIONS: `--import=${WARP}` }

interface App { url: string, child: ChildProcess, stop: () => Promise<void> }

async function startApp(env: Record<string, string>, args: string[] = []): Promise<App> {
  const child = spawn(NODE, [...args, APP], { env: { PATH: process.env.PATH ?? '', ...env }, cwd: resolve(import.meta.dirname, '../../..'), stdio: ['ignore', 'pipe', 'pipe'] })
  let err = ''
  child.stderr?.on('data', (c: Buffer) => { err += c.toString() })
  const port = await new Promise<string>((res, rej) => {
    let out = ''
    child.stdout?.on('data', (c: Buffer) => {
      out += c.toString()
      const m = /listening (\d+)/.exec(out)
      if (m !== null) res(m[1] as string)
    })
    child.once('exit', () => rej(new Error(`the app exited: ${err}`)))
  })
  const exited = new Promise((res) => child.once('exit', res))
  return { url: `http://127.0.0.1:${port}/check`, child, stop: async () => { child.kill('SIGTERM'); await exited } }
}

const check = async (app: App, token: string): Promise<number> => (await fetch(app.url, { headers: { authorization: `Bearer ${token}` } })).status

const admin = async (url: string, sql: string): Promise<void> => { await queryOnce(url, sql) }

/** Successful verifications of `kid` per reporter id, as the store holds them. */
async function okByReporter(store: Store, kid: string): Promise<Map<string, number>> {
  const out = new Map<string, number>()
  for (const r of await store.usageBuckets(Date.now() - 600_000)) if (r.kid === kid && r.result === 'ok') out.set(r.instanceId, (out.get(r.instanceId) ?? 0) + r.count)
  return out
}

describe('finalize on evidence: 2 rekey serve instances and a library app on PostgreSQL', { skip: POSTGRES === undefined ? 'REKEY_TEST_POSTGRES_URL is not set' : false }, () => {
  const schema = `rekey_evidence_${randomBytes(5).toString('hex')}`
  const dir = mkdtempSync(join(os.tmpdir(), 'rekey-evidence-'))
  let store: string
  let env: Record<string, string>
  const servers: ServeProc[] = []
  let app: App | undefined
  let reader: Store | undefined

  before(async () => {
    await admin(POSTGRES as string, `CREATE SCHEMA ${schema}`)
    store = urlWithSchema(POSTGRES as string, schema)
    env = { REKEY_STORE: store, REKEY_MASTER_KEY: randomBytes(32).toString('base64'), REKEY_ACCESS_KEY_ALG: 'EdDSA', JWT_EXPIRATION: '90', REKEY_SCHEDULER: 'off' }
    servers.push(await startServe({ cwd: dir, env, timeoutMs: 60_000 }))
    servers.push(await startServe({ cwd: dir, env, timeoutMs: 60_000 }))
    reader = await openStore(POSTGRES as string, { schema, max: 1 })
  })
  after(async () => {
    await app?.stop()
    for (const s of servers) await s.stop()
    await reader?.close()
    await admin(POSTGRES as string, `DROP SCHEMA IF EXISTS ${schema} CASCADE`).catch(() => {})
    rmSync(dir, { recursive: true, force: true })
  })

  test('refused naming counts and processes; status shows every reporter; --force cuts them', async () => {
    const [s1, s2] = servers as [ServeProc, ServeProc]
    const user = await signUp(s1.url)
    const oldKid = headerOf(user.accessToken).kid as string
    app = await startApp({ JWKS_URL: `${s1.url}/.well-known/jwks.json`, USAGE_STORE: store, APP_NAME: 'orders-api' })
    const rotated = await runRekey(['--json', 'rotate', '--secret', 'access', '--publish-delay', '0'], { cwd: dir, env })
    assert.equal(rotated.code, 0, rotated.stderr)
    // Old-key tokens keep arriving: 4 at the app, 2 and 1 at the instances.
    for (let i = 0; i < 4; i++) assert.equal(await check(app, user.accessToken), 200)
    for (const [s, n] of [[s1, 2], [s2, 1]] as const) for (let i = 0; i < n; i++) assert.equal((await me(s.url, user.accessToken)).status, 200)
    // A token of the new key, verified only by the app: 3 of the 10 verifications.
    const login = await post(`${s1.url}/api/auth/login`, { email: user.email, password: user.password })
    const fresh = (await login.json() as { accessToken: string }).accessToken
    const newKid = headerOf(fresh).kid as string
    assert.notEqual(newKid, oldKid)
    for (let i = 0; i < 3; i++) assert.equal(await check(app, fresh), 200)
    await until(async () => {
      const by = await okByReporter(reader as Store, oldKid)
      const fresh = [...(await okByReporter(reader as Store, newKid)).values()].reduce((a, b) => a + b, 0)
      return [...by.values()].reduce((a, b) => a + b, 0) >= 7 && by.size === 3 && fresh >= 3
    }, 15_000, 'every process to flush its counts', 200)

    const refused = await runRekey(['finalize', '--secret', 'access'], { cwd: dir, env: { ...env, ...LATER } })
    assert.equal(refused.code, 1, refused.stdout)
    assert.match(refused.stderr, /^rekey: ERR_UNSAFE: finalize refused: the old key verified 7 token\(s\) in the last 5 min on orders-api \(4\), rekey-serve#[0-9a-f]{8} \(2\) and rekey-serve#[0-9a-f]{8} \(1\); finalize would cut them/)

    const status = await runRekey(['--json', 'status'], { cwd: dir, env })
    assert.equal(status.code, 0, status.stderr)
    const report = JSON.parse(status.stdout) as {
      reporters: { name: string, kind: string, lastReportAt: string }[]
      keyProcesses: Record<string, { name: string, count: number }[]>
      secrets: { secret: string, keys: { kid: string, share: number }[] }[]
      finalizeEvidence: Record<string, { total: number }>
    }
    const app1 = report.reporters.find((r) => r.name === 'orders-api')
    assert.equal(app1?.kind, 'library')
    assert.ok(Date.now() - Date.parse(app1?.lastReportAt ?? '') < 90_000, 'reported within the last minute or so')
    assert.equal(report.reporters.filter((r) => r.kind === 'rekey-serve').length, 2)
    assert.deepEqual(report.keyProcesses[oldKid]?.map((p) => p.count).sort(), [1, 2, 4])
    // Each key's share counts every reporting process: the app's verifications of both keys included.
    const shares = Object.fromEntries(report.secrets.find((x) => x.secret === 'access')?.keys.map((k) => [k.kid, k.share]) ?? [])
    assert.deepEqual([shares[oldKid], shares[newKid]], [0.7, 0.3])
    assert.equal(report.finalizeEvidence.access?.total, 7)
    const human = await runRekey(['status'], { cwd: dir, env })
    assert.match(human.stdout, /access: the previous key verified 7 token\(s\) in the last 5 min on orders-api \(4\)/)
    assert.match(human.stdout, /orders-api\s+orders-api\/\S+\/\d+\s+\d+ verification\(s\)\s+last reported \d{4}-/)

    const forced = await runRekey(['--json', 'finalize', '--secret', 'access', '--force'], { cwd: dir, env: { ...env, ...LATER } })
    assert.equal(forced.code, 0, forced.stderr)
    const f = JSON.parse(forced.stdout) as { changed: boolean, forced: boolean, cut: number }
    assert.deepEqual([f.changed, f.forced, f.cut], [true, true, 7])
    const audit = await (reader as Store).listAudit()
    assert.match(audit.at(-1)?.notes ?? '', /forced while in use: the old key verified 7 token\(s\)/)
  })
})

describe('finalize on evidence in env-file mode: an app reporting to the SQLite store beside the file', () => {
  test('refused while the app verified old-key tokens; --force goes through', async (t) => {
    const dir = mkdtempSync(join(os.tmpdir(), 'rekey-envapp-'))
    t.after(() => rmSync(dir, { recursive: true, force: true }))
    const file = join(dir, '.env')
    writeFileSync(file, 'JWT_EXPIRATION=90\n', { mode: 0o600 })
    const cli = (args: string[], extra: Record<string, string> = {}): ReturnType<typeof runRekey> => runRekey(['--env-file', file, ...args], { cwd: dir, env: extra })
    assert.equal((await cli(['gen', '--var', 'JWT_SECRET'])).code, 0)
    const oldToken = Keyring.fromEnv(parse(readFileSync(file))).sign({ sub: 'u1' })
    const rotated = await cli(['rotate'])
    assert.equal(rotated.code, 0, rotated.stderr)
    const vars = parse(readFileSync(file))
    assert.ok(vars.JWT_SECRET_PREV !== undefined)
    const newToken = Keyring.fromEnv({ JWT_SECRET: vars.JWT_SECRET }).sign({ sub: 'u1' })
    const storePath = join(dir, '.rekey', 'rekey.db')
    // Node reads the file itself (--env-file): the app sees what rekey wrote.
    const app = await startApp({ USAGE_STORE: storePath, APP_NAME: 'env-app' }, [`--env-file=${file}`])
    t.after(() => app.stop())
    for (let i = 0; i < 3; i++) assert.equal(await check(app, oldToken), 200)
    for (let i = 0; i < 2; i++) assert.equal(await check(app, newToken), 200)
    const reader = await openStore(storePath)
    t.after(() => reader.close())
    const oldKid = Keyring.fromEnv({ JWT_SECRET: vars.JWT_SECRET_PREV }).currentKid
    await until(async () => [...(await okByReporter(reader, oldKid)).values()].reduce((a, b) => a + b, 0) >= 3, 10_000, 'the app to flush', 200)

    const refused = await cli(['finalize'], LATER)
    assert.equal(refused.code, 1, refused.stdout + refused.stderr)
    assert.match(refused.stderr, /^rekey: ERR_UNSAFE: finalize refused: the old key verified 3 token\(s\) in the last 5 min on env-app \(3\); finalize would cut them/)
    assert.ok(parse(readFileSync(file)).JWT_SECRET_PREV !== undefined, 'the file is unchanged')
    const forced = await cli(['finalize', '--force'], LATER)
    assert.equal(forced.code, 0, forced.stderr)
    assert.equal(parse(readFileSync(file)).JWT_SECRET_PREV, undefined)
  })
})
