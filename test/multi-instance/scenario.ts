/**
 * The three-instance rotation run, shared by the PostgreSQL multi-instance test and
 * `bench/rotation.ts`: N `rekey serve` processes on one fresh schema, continuous
 * authenticated traffic across them, two `rekey rotate` runs (with a `rekey finalize` between
 * them, which must be refused), then `rekey emergency`, timed until every instance refuses
 * an old token.
 */
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { openStore } from '../../src/store/open.ts'
import type { Store } from '../../src/store/store.ts'
import { Load, headerOf, me, runRekey, signUp, startServe, urlWithSchema, type LoadReport, type ServeProc } from './cluster.ts'
import { queryOnce } from '../store/support/stores.ts'

export interface ScenarioOptions {
  /** A PostgreSQL URL with a user (the processes do not inherit PGUSER). */
  readonly postgresUrl: string
  /** How long the traffic runs, ms; the rotations happen at 15% and 45% of it. */
  readonly durationMs: number
  /** Default 3. */
  readonly instances?: number
  /** Concurrent workers, each with its own user. Default 20. */
  readonly concurrency?: number
  /** Rest between each worker's rounds, ms (default 0: as fast as they can). */
  readonly pauseMs?: number
  /** Progress lines (the bench prints them). */
  readonly progress?: (line: string) => void
}

export interface RotationResult {
  readonly code: number | null
  readonly stderr: string
  /** The CLI process from spawn to exit, ms. */
  readonly cliMs: number
  readonly oldKid: string
  readonly newKid: string
  /** From the CLI's start until the last instance issued its first token with the new kid, ms. */
  readonly propagationMs: number
  /**
   * The protocol alone, without the CLI's own start-up: from the staging commit (its audit
   * row) until the last instance issued its first token with the new kid, ms.
   */
  readonly fromStageMs: number
  /** What rotate reported waiting for the instances' acknowledgements, ms. */
  readonly waitedMs: number
  /** Logins started after rotate returned that still carried the old kid (must be 0). */
  readonly oldKidAfterReturn: number
}

export interface ScenarioResult {
  readonly instances: number
  readonly concurrency: number
  readonly load: LoadReport
  readonly rotations: readonly RotationResult[]
  /** `rekey finalize` between the rotations: its exit code (1: refused) and message. */
  readonly finalizeBetween: { readonly code: number | null, readonly stderr: string }
  readonly emergency: {
    readonly code: number | null
    readonly stderr: string
    readonly cliMs: number
    /** From the CLI's start until every instance refused a token issued before, ms. */
    readonly refusedEverywhereMs: number
    /** From the emergency's commit (seen by polling the key-set version) until every instance refused it, ms. */
    readonly fromCommitMs: number
  }
}

const admin = async (url: string, sql: string): Promise<void> => { await queryOnce(url, sql) }

/** Runs the scenario; cleans up its processes, directory and schema whatever happens. */
export async function runRotationScenario(options: ScenarioOptions): Promise<ScenarioResult> {
  const progress = options.progress ?? (() => {})
  const count = options.instances ?? 3
  const concurrency = options.concurrency ?? 20
  const schema = `rekey_multi_${randomBytes(6).toString('hex')}`
  const dir = mkdtempSync(join(tmpdir(), 'rekey-multi-'))
  const store = urlWithSchema(options.postgresUrl, schema)
  const env = { REKEY_STORE: store, REKEY_MASTER_KEY: randomBytes(32).toString('base64') }
  const cli = (...args: string[]): ReturnType<typeof runRekey> => runRekey(['--store', store, '--operator', 'multi-instance', '--json', ...args], { cwd: dir, env })
  const servers: ServeProc[] = []
  let reader: Store | null = null
  await admin(options.postgresUrl, `CREATE SCHEMA ${schema}`)
  try {
    // Started together: they race to create the first keys, and exactly one wins.
    servers.push(...await Promise.all(Array.from({ length: count }, () => startServe({ cwd: dir, env }))))
    const urls = servers.map((s) => s.url)
    reader = await openStore(options.postgresUrl, { schema, max: 1 })
    const auditAt = async (method: string): Promise<number> => (await (reader as Store).listAudit()).filter((a) => a.method === method).at(-1)?.at ?? Number.NaN
    progress(`${count} instances ready on schema ${schema}`)
    const users = []
    for (let i = 0; i < concurrency; i++) users.push(await signUp(urls[i % urls.length] as string))
    const firstKid = headerOf(users[0]?.accessToken ?? '').kid as string

    const load = new Load(urls, users, options.pauseMs ?? 0)
    const started = Date.now()
    load.start()
    const rotate = async (oldKid: string): Promise<RotationResult> => {
      const t0 = Date.now()
      const r = await cli('rotate')
      const returned = Date.now()
      const report = r.code === 0 ? JSON.parse(r.stdout) as { staged: { purpose: string, kid: string }[], waitedMs: number } : { staged: [], waitedMs: Number.NaN }
      const newKid = report.staged.find((s) => s.purpose === 'access')?.kid ?? ''
      // Let each instance issue a few tokens after the return, then read when each first signed with the new kid.
      await sleep(300)
      const firsts = urls.map((_, i) => load.logins.find((l) => l.instance === i && l.kid === newKid)?.endedAt ?? Number.POSITIVE_INFINITY)
      const oldKidAfterReturn = load.logins.filter((l) => l.startedAt > returned && l.kid === oldKid).length
      const stagedAt = await auditAt('rotate-stage')
      return {
        code: r.code, stderr: r.stderr, cliMs: r.ms, oldKid, newKid, oldKidAfterReturn, waitedMs: report.waitedMs,
        propagationMs: Math.max(...firsts) - t0, fromStageMs: Math.max(...firsts) - stagedAt,
      }
    }
    await sleep(options.durationMs * 0.15)
    const first = await rotate(firstKid)
    progress(`rotation 1: exit ${first.code}, ${first.oldKid} -> ${first.newKid}, every instance signing ${first.propagationMs} ms after the CLI started, ${first.fromStageMs} ms after staging`)
    const finalize = await cli('finalize')
    progress(`finalize between the rotations: exit ${finalize.code}`)
    await sleep(Math.max(0, started + options.durationMs * 0.45 - Date.now()))
    const second = await rotate(first.newKid)
    progress(`rotation 2: exit ${second.code}, ${second.oldKid} -> ${second.newKid}, every instance signing ${second.propagationMs} ms after the CLI started, ${second.fromStageMs} ms after staging`)
    await sleep(Math.max(0, started + options.durationMs - Date.now()))
    const report = await load.stop()
    progress(`traffic: ${report.requests} requests, ${report.failures} failures`)

    // Emergency: a token issued before it must be refused on every instance.
    const token = users[0]?.accessToken as string
    const e0 = Date.now()
    const refusedAt: number[] = []
    const watchers = urls.map(async (url, i) => {
      while (Date.now() - e0 < 15_000) {
        if ((await me(url, token)).status === 401) {
          refusedAt[i] = Date.now()
          return
        }
        await sleep(5)
      }
    })
    // The commit as a reader of the store sees it: the key-set version moves. (The audit row's
    // time is taken before the emergency counts usage and ends every session, which takes a while.)
    const versionBefore = await reader.getKeysetVersion()
    let committedAt = Number.NaN
    const commitWatcher = (async () => {
      while (Date.now() - e0 < 15_000) {
        if (await (reader as Store).getKeysetVersion() !== versionBefore) {
          committedAt = Date.now()
          return
        }
        await sleep(5)
      }
    })()
    const e = await cli('emergency', '--reason', 'multi-instance drill')
    await Promise.all([...watchers, commitWatcher])
    const last = refusedAt.length === urls.length && refusedAt.every((t) => t !== undefined) ? Math.max(...refusedAt) : Number.POSITIVE_INFINITY
    progress(`emergency: exit ${e.code}, refused everywhere ${last - e0} ms after the CLI started, ${last - committedAt} ms after its commit`)
    return {
      instances: count, concurrency, load: report, rotations: [first, second],
      finalizeBetween: { code: finalize.code, stderr: finalize.stderr },
      emergency: { code: e.code, stderr: e.stderr, cliMs: e.ms, refusedEverywhereMs: last - e0, fromCommitMs: last - committedAt },
    }
  } finally {
    await reader?.close().catch(() => {})
    await Promise.allSettled(servers.map((s) => s.stop()))
    rmSync(dir, { recursive: true, force: true })
    await admin(options.postgresUrl, `DROP SCHEMA IF EXISTS ${schema} CASCADE`).catch(() => {})
  }
}
