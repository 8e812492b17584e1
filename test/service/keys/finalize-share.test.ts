/**
 * `finalize --when-share-below` and REKEY_FINALIZE_WHEN_SHARE_BELOW with a frozen clock: the
 * old key goes before the time rule once its share of verifications, across every reporting
 * process, has stayed below the threshold in every minute of the last 15, and not before.
 * The counters are written as reporting processes write them (real SQLite store).
 */
import assert from 'node:assert/strict'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { parse } from 'dotenv'
import { generateSecret, Keyring, RekeyError } from '../../../src/index.ts'
import { openStore } from '../../../src/store/open.ts'
import type { Store } from '../../../src/store/store.ts'
import { runCli } from '../../cli/helpers.ts'
import { TestClock, testServer, type TestServer } from '../../http/support.ts'

const MIN = 60_000
const actor = { operator: 'alice', requestId: null }

/** Per minute from `t0`: `fresh` verifications of the new kid on orders-api, `old(m)` of the old one on billing. */
async function traffic(store: Store, t0: number, minutes: number, kids: { old: string, fresh: string }, old: (m: number) => number, fresh = 100): Promise<void> {
  const rows = []
  for (let m = 0; m < minutes; m++) {
    rows.push({ kid: kids.fresh, instanceId: 'orders-api/host-a/101', bucketStart: t0 + m * MIN, result: 'ok', count: fresh })
    if (old(m) > 0) rows.push({ kid: kids.old, instanceId: 'billing/host-b/202', bucketStart: t0 + m * MIN, result: 'ok', count: old(m) })
  }
  await store.addUsage(rows)
}

describe('finalize --when-share-below (managed, frozen clock)', () => {
  let server: TestServer
  let clock: TestClock
  before(async () => {
    clock = new TestClock(Date.UTC(2026, 2, 2, 10, 0, 30))
    server = await testServer({ clock, env: { JWT_EXPIRATION: '1h', REKEY_SCHEDULER_INTERVAL: '86400', REKEY_FINALIZE_WHEN_SHARE_BELOW: '5%' } })
  })
  after(async () => { await server.stop() })

  test('refused until the share stayed below 5% for 15 minutes, then finalized before the time rule, saying what it cut', async () => {
    const { rotation, store } = server.service
    const rotated = await rotation.rotate({ secret: 'access', actor })
    const fresh = rotated.staged[0]?.kid as string
    const old = rotated.changes.find((c) => c.to === 'previous')?.kid as string
    const t0 = clock.now()
    // 17% for the first 3 minutes after the rotation, then 2.9% (3 of 103).
    await traffic(store, t0, 20, { old, fresh }, (m) => (m < 3 ? 20 : 3))

    clock.advance(10 * MIN)
    await assert.rejects(rotation.finalize({ secret: 'access', actor, whenShareBelow: 0.05 }), (err: RekeyError) =>
      err.code === 'ERR_UNSAFE' && /access tokens it signed can be valid until/.test(err.message)
      && /the old key verified \d+ token\(s\) in the last 5 min on billing \(\d+\)/.test(err.message)
      && /--when-share-below: access: the old key stopped signing less than 15 minutes ago/.test(err.message))

    clock.advance(6 * MIN) // 16 min: the first minutes (17 %) are still in the window
    await assert.rejects(rotation.finalize({ secret: 'access', actor, whenShareBelow: 0.05 }), /share reached 16\.7% in a minute of the last 15 \(threshold 5%\)/)

    clock.advance(3 * MIN) // 19 min: every minute of the window below 5 %
    const report = await rotation.finalize({ secret: 'access', actor, whenShareBelow: 0.05 })
    assert.equal(report.changed, true)
    assert.equal(report.byShare, true)
    assert.equal(report.forced, false)
    assert.deepEqual(report.retired.map((k) => k.kid), [old])
    assert.equal(report.cut, 18, "3 a minute over the 6 minutes overlapping the last 5")
    const row = (await store.listAudit()).at(-1)
    assert.equal(row?.method, 'finalize-share')
    assert.match(row?.notes ?? '', /stayed below 5% for 15 minutes \(at most 2\.9%; \d+ of \d+ verifications\); cut \d+ token\(s\)/)
  })

  test('the scheduler does the same with REKEY_FINALIZE_WHEN_SHARE_BELOW', async () => {
    const { rotation, store, scheduler } = server.service
    assert.ok(scheduler !== null)
    const rotated = await rotation.rotate({ secret: 'access', actor })
    const fresh = rotated.staged[0]?.kid as string
    const old = rotated.changes.find((c) => c.to === 'previous')?.kid as string
    const t0 = clock.now()
    await traffic(store, t0, 18, { old, fresh }, () => 1)
    clock.advance(5 * MIN)
    const early = await scheduler.tick()
    assert.ok(!early.actions.some((a) => a.job === 'finalize:access' && a.outcome === 'done'), 'not yet: 5 minutes of evidence')
    clock.advance(12 * MIN)
    const tick = await scheduler.tick()
    const action = tick.actions.find((a) => a.job === 'finalize:access')
    assert.equal(action?.outcome, 'done', JSON.stringify(tick.actions))
    assert.equal(action?.detail, `retired ${old}`)
  })
})

describe('finalize --when-share-below in env-file mode', () => {
  test('the store beside the file holds the evidence; below the threshold it finalizes, above it refuses', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'rekey-share-env-'))
    t.after(() => rmSync(dir, { recursive: true, force: true }))
    const [current, previous] = [generateSecret(), generateSecret()]
    const file = join(dir, '.env')
    const rotatedAt = Date.now() - 20 * MIN
    writeFileSync(file, `JWT_SECRET=${current}\nJWT_SECRET_PREV=${previous}\nJWT_SECRET_ROTATED_AT=${new Date(rotatedAt).toISOString()}\nJWT_EXPIRATION=1h\n`, { mode: 0o600 })
    const store = await openStore(join(dir, '.rekey', 'rekey.db'))
    const kids = { old: Keyring.fromEnv({ JWT_SECRET: previous }).currentKid, fresh: Keyring.fromEnv({ JWT_SECRET: current }).currentKid }
    await traffic(store, Date.now() - 18 * MIN, 19, kids, () => 2)
    await store.close()

    const strict = await runCli(['--env-file', file, 'finalize', '--when-share-below', '1%'])
    assert.equal(strict.code, 1)
    assert.match(strict.stderr, /^rekey: ERR_UNSAFE: Tokens signed by the old key may be live until .*the old key verified \d+ token\(s\) in the last 5 min on billing \(\d+\); finalize would cut them; --when-share-below: the old key's share reached 2% /)
    assert.equal(parse(readFileSync(file)).JWT_SECRET_PREV, previous, 'unchanged')

    const r = await runCli(['--env-file', file, '--json', 'finalize', '--when-share-below', '5%'])
    assert.equal(r.code, 0, r.stderr)
    const report = JSON.parse(r.stdout) as { changed: boolean, method: string, notes: string }
    assert.equal(report.method, 'finalize --when-share-below')
    assert.match(report.notes, /stayed below 5% for 15 minutes/)
    assert.equal(parse(readFileSync(file)).JWT_SECRET_PREV, undefined)

    const bad = await runCli(['--env-file', file, 'finalize', '--when-share-below', '150%'])
    assert.equal(bad.code, 2)
    assert.match(bad.stderr, /--when-share-below must be more than 0% and less than 100%/)
  })

  test('a bare fraction is refused as ambiguous (0.5 could be 0.5% or 50%), as flag and as setting', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'rekey-share-bare-'))
    t.after(() => rmSync(dir, { recursive: true, force: true }))
    const file = join(dir, '.env')
    const previous = generateSecret()
    writeFileSync(file, `JWT_SECRET=${generateSecret()}\nJWT_SECRET_PREV=${previous}\nJWT_EXPIRATION=1h\n`, { mode: 0o600 })
    const flag = await runCli(['--env-file', file, 'finalize', '--when-share-below', '0.5'])
    assert.equal(flag.code, 2, flag.stdout)
    assert.equal(flag.stderr, 'rekey: ERR_USAGE: --when-share-below is ambiguous without %: write 0.5% or 50%\n')
    assert.equal(parse(readFileSync(file)).JWT_SECRET_PREV, previous, 'unchanged')
    const setting = await runCli(['--store', join(dir, 'rekey.db'), 'status'], { REKEY_FINALIZE_WHEN_SHARE_BELOW: '0.05' })
    assert.equal(setting.code, 2)
    assert.match(setting.stderr, /REKEY_FINALIZE_WHEN_SHARE_BELOW is ambiguous without %: write 0\.05% or 5%/)
  })
})
