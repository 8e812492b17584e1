/**
 * The buffer a store outage leaves behind is bounded: the usage recorder (behind both
 * `rekey serve` and a keyring's `opts.usage`) holds at most 10,000 counters while every flush
 * fails (counts of later minutes are dropped, never memory), and writes what it held once the
 * store answers. Frozen clock; a real SQLite store behind a switch that makes it fail.
 */
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import os from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { openStore } from '../../../src/store/open.ts'
import type { Store } from '../../../src/store/store.ts'
import type { UsageIncrement } from '../../../src/store/types.ts'
import { UsageRecorder } from '../../../src/service/usage/usage.ts'

const MIN = 60_000

test('a long outage holds at most 10,000 counters; they are written once the store answers', async (t) => {
  const dir = mkdtempSync(join(os.tmpdir(), 'rekey-usage-bound-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  const real = await openStore(join(dir, 'usage.db'))
  t.after(() => real.close())
  let down = true
  let failures = 0
  const written: UsageIncrement[] = []
  const store = {
    addUsage: async (rows: readonly UsageIncrement[]) => {
      if (down) throw new Error('the store is down')
      written.push(...rows)
      await real.addUsage(rows)
    },
    pruneUsage: async () => 0,
  } as unknown as Store
  let now = Date.UTC(2026, 0, 5)
  const recorder = new UsageRecorder({ store, clock: { now: () => now }, instanceId: 'orders-api/h/1', onError: () => { failures++ } })

  // Three days of traffic on three counters a minute (9 flushes an hour, all failing): 12,960 counters offered.
  for (let m = 0; m < 3 * 1440; m++) {
    for (const kid of ['old', 'new']) recorder.add(kid, 'ok', 2)
    recorder.add('old', 'ERR_TOKEN_EXPIRED', 1)
    if (m % 10 === 0) await recorder.flush()
    now += MIN
  }
  assert.equal(failures, 432)
  // A new minute with the buffer full: its counts are dropped, never held.
  const before = now
  recorder.add('old', 'ok', 5)
  recorder.add('old', 'ok', 5)

  down = false
  await recorder.flush()
  assert.equal(written.length, 10_000, 'exactly the bound, not the 12,960 offered')
  assert.equal(new Set(written.map((r) => `${r.bucketStart}|${r.kid}|${r.result}`)).size, 10_000, 'one row per counter')
  const stored = await real.usageBuckets(0)
  assert.equal(stored.length, 10_000)
  assert.ok(!stored.some((r) => r.bucketStart >= before), 'counters past the bound were dropped, not held')

  // After the outage the recorder counts and writes as before.
  now += MIN
  recorder.add('new', 'ok', 7)
  await recorder.flush()
  assert.deepEqual(written.at(-1), { kid: 'new', instanceId: 'orders-api/h/1', bucketStart: now, result: 'ok', count: 7 })
})
