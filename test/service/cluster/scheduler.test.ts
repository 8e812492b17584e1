/**
 * Scheduled rotation with a frozen clock the test moves: two service instances on one SQLite
 * store tick by hand (the timer is set to a day, so it never fires here).
 */
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { Scheduler, SCHEDULER_LEASE } from '../../../src/service/cluster/scheduler.ts'
import type { KeyRotation } from '../../../src/service/keys/rotation.ts'
import type { RotateReport } from '../../../src/service/keys/rotation-report.ts'
import { TestClock, testServer, type TestServer } from '../../http/support.ts'

const DAY = 86_400_000
const T0 = Date.UTC(2026, 0, 5, 9)

async function pair(dir: string, clock: TestClock, env: Record<string, string> = {}): Promise<[TestServer, TestServer]> {
  const options = { dir, clock, env: { REKEY_SCHEDULER_INTERVAL: '86400', ...env } }
  const a = await testServer({ ...options, instanceId: 'instance-a' })
  const b = await testServer({ ...options, instanceId: 'instance-b' })
  return [a, b]
}

const schedulerRows = async (s: TestServer): Promise<string[]> =>
  (await s.service.store.listAudit()).filter((r) => r.operator === 'scheduler').map((r) => `${r.method} ${r.secret}`)

describe('the scheduler', () => {
  let dir: string
  let clock: TestClock
  let a: TestServer
  let b: TestServer

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'rekey-scheduler-'))
    // The cadence comes from rekey.config.json, as `rekey due` reads it.
    writeFileSync(join(dir, 'rekey.config.json'), JSON.stringify({ cadence: { 'jwt-access': '30d' } }))
    clock = new TestClock(T0)
    ;[a, b] = await pair(dir, clock)
  })
  after(async () => {
    await a.stop()
    await b.stop()
    rmSync(dir, { recursive: true, force: true })
  })

  test('starts with the service, one per instance', () => {
    assert.ok(a.service.scheduler !== null && b.service.scheduler !== null)
    assert.deepEqual(a.service.config.cadence.byName, { 'jwt-access': 30 })
  })

  test('not due: a tick changes nothing', async () => {
    clock.advance(29 * DAY)
    const report = await a.service.scheduler?.tick()
    assert.equal(report?.ran, true)
    assert.deepEqual(report?.actions, [])
    assert.deepEqual(await schedulerRows(a), [])
  })

  test('due: two instances ticking at once rotate once; the refresh key (90 d) is not due', async () => {
    clock.advance(1 * DAY + 60_000)
    const oldKid = a.service.keys.access.currentKid
    const [ra, rb] = await Promise.all([a.service.scheduler?.tick(), b.service.scheduler?.tick()])
    assert.deepEqual([ra?.ran, rb?.ran].sort(), [false, true], 'exactly one instance holds the lease')
    assert.equal((ra?.ran === true ? rb : ra)?.reason, 'lease')
    // The holder keeps the lease; the other keeps skipping, and a second tick finds nothing due.
    await a.service.scheduler?.tick()
    await b.service.scheduler?.tick()
    assert.deepEqual(await schedulerRows(a), ['rotate-stage jwt-access', 'rotate jwt-access'])
    const keys = await a.service.store.listKeys('access')
    assert.deepEqual(keys.map((k) => k.state), ['previous', 'current'])
    assert.equal(keys[0]?.kid, oldKid)
    const inventory = await a.service.store.getSecret('jwt-access')
    assert.equal(inventory?.lastRotatedAt, clock.now())
  })

  test('finalize waits for the grace window, then retires the old key (never forced)', async () => {
    const holder = (await a.service.scheduler?.tick())?.ran === true ? a : b
    assert.deepEqual(await schedulerRows(a), ['rotate-stage jwt-access', 'rotate jwt-access'], 'the grace window (15 min + 60 s) is still open')
    clock.advance(15 * 60_000 + 61_000)
    const report = await holder.service.scheduler?.tick()
    assert.deepEqual(report?.actions.map((x) => [x.job, x.outcome]), [['finalize:access', 'done']])
    assert.deepEqual((await a.service.store.listKeys('access')).map((k) => k.state), ['retired', 'current'])
    assert.deepEqual((await schedulerRows(a)).at(-1), 'finalize jwt-access')
  })

  test('a lease held by another instance: skipped until it expires', async () => {
    const store = a.service.store
    await a.service.scheduler?.stop()
    await b.service.scheduler?.stop()
    clock.advance(40 * DAY)
    assert.equal(await store.tryAcquireLease(SCHEDULER_LEASE, 'someone-else', 5 * 60_000, clock.now()), true)
    assert.deepEqual(await a.service.scheduler?.tick(), { ran: false, reason: 'lease', actions: [], reminders: 0 })
    assert.equal((await schedulerRows(a)).filter((r) => r.startsWith('rotate ')).length, 1)
    clock.advance(5 * 60_000 + 1)
    const report = await a.service.scheduler?.tick()
    assert.equal(report?.ran, true)
    assert.ok(report?.actions.some((x) => x.job === 'rotate:access' && x.outcome === 'done'))
  })
})

test('a failing rotation is retried with exponential backoff, capped', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'rekey-scheduler-'))
  const clock = new TestClock(T0)
  const server = await testServer({ dir, clock, env: { REKEY_SCHEDULER: 'off' } })
  try {
    assert.equal(server.service.scheduler, null, 'REKEY_SCHEDULER=off')
    let calls = 0
    let failUntil = 4
    const rotation = {
      rotate: async (): Promise<RotateReport> => {
        calls++
        if (calls <= failUntil) throw new Error('store unavailable')
        return server.service.rotation.rotate({ secret: 'access', actor: { operator: 'scheduler', requestId: null } })
      },
      finalize: async () => ({ changed: false, forced: false, retired: [], checks: [], keysetVersion: 0 }),
    } as unknown as KeyRotation
    const warnings: object[] = []
    const scheduler = new Scheduler({
      store: server.service.store, rotation, clock, instanceId: 'solo', cadencePolicy: { byName: { 'jwt-access': 30 }, byKind: {} },
      retryBaseMs: 60_000, retryMaxMs: 180_000, log: { info: () => {}, warn: (obj) => { warnings.push(obj) } },
    })
    clock.advance(31 * DAY)
    const outcomes: string[] = []
    const tickAt = async (ms: number): Promise<void> => {
      clock.advance(ms)
      const r = await scheduler.tick()
      outcomes.push(r.actions.filter((x) => x.job === 'rotate:access').map((x) => x.outcome).join(',') || 'none')
    }
    await tickAt(0) // fails: retry in 60 s
    await tickAt(30_000) // backing off
    await tickAt(31_000) // fails: retry in 120 s
    await tickAt(119_000) // backing off
    await tickAt(2_000) // fails: retry in 180 s (capped, not 240)
    await tickAt(181_000) // fails again: still 180 s
    failUntil = 0
    await tickAt(179_000) // backing off
    await tickAt(2_000) // done
    await tickAt(60_000) // nothing due any more
    assert.deepEqual(outcomes, ['failed', 'backoff', 'failed', 'backoff', 'failed', 'failed', 'backoff', 'done', 'none'])
    assert.equal(calls, 5)
    assert.equal(warnings.length, 4)
    assert.match(JSON.stringify(warnings[2]), /"failures":3/)
    assert.deepEqual((await server.service.store.listKeys('access')).map((k) => k.state), ['previous', 'current'])
    await scheduler.stop()
  } finally {
    await server.stop()
    rmSync(dir, { recursive: true, force: true })
  }
})
