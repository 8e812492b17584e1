/**
 * Three `rekey serve` processes on one PostgreSQL schema under continuous authenticated
 * traffic (logins, /me, refresh, round-robin, 20 concurrent workers, each resting 20 ms
 * between rounds so the CLI processes are not starved of CPU on a small machine): two `rekey rotate` runs in the
 * middle with a refused `rekey finalize` between them, zero failed requests, and a final
 * `rekey emergency` refused on all three instances within a second of its commit.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { POSTGRES_URL, REQUIRE_POSTGRES } from '../store/support/stores.ts'
import { runRotationScenario } from './scenario.ts'

const skip = POSTGRES_URL === '' && !REQUIRE_POSTGRES ? 'REKEY_TEST_POSTGRES_URL is not set; multi-instance PostgreSQL test skipped' : false

describe('three instances on PostgreSQL through two rotations and an emergency', { skip }, () => {
  test('zero failed requests; each rotation reaches every instance; emergency refused everywhere within a second', async (t) => {
    if (POSTGRES_URL === '') throw new Error('REKEY_REQUIRE_POSTGRES=1 but REKEY_TEST_POSTGRES_URL is not set')
    const result = await runRotationScenario({ postgresUrl: POSTGRES_URL, durationMs: 10_000, instances: 3, concurrency: 20, pauseMs: 20 })
    const { load } = result
    t.diagnostic(`${load.requests} requests, ${load.failures} failures; rotations staged → signing everywhere: ${result.rotations.map((r) => `${r.fromStageMs} ms`).join(', ')}; emergency commit → refused everywhere: ${result.emergency.fromCommitMs} ms`)

    assert.ok(load.requests > 500, `enough traffic to mean something: ${load.requests} requests`)
    for (const route of ['login', 'me', 'me (initial token)', 'refresh', 'me (refreshed)']) assert.ok((load.byRoute[route] ?? 0) > 50, `${route} was exercised`)
    assert.deepEqual(load.failureSamples, [], 'no request failed')
    assert.equal(load.failures, 0)

    const [first, second] = result.rotations
    for (const r of [first, second]) {
      assert.equal(r?.code, 0, r?.stderr)
      assert.notEqual(r?.newKid, r?.oldKid)
      assert.ok(Number.isFinite(r?.propagationMs), 'every instance issued tokens with the new kid')
      assert.equal(r?.oldKidAfterReturn, 0, 'once rotate returned, no instance signed with the old kid')
    }
    // The second rotation must not cut tokens of the first key: finalize in between is refused,
    // and tokens issued before both rotations ("me (initial token)") never failed.
    assert.equal(result.finalizeBetween.code, 1)
    assert.match(result.finalizeBetween.stderr, /ERR_UNSAFE.*finalize refused/)

    assert.equal(result.emergency.code, 0, result.emergency.stderr)
    assert.ok(result.emergency.fromCommitMs < 1000, `emergency refused everywhere ${result.emergency.fromCommitMs} ms after its commit`)
  })
})
