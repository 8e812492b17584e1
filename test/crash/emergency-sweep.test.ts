/**
 * The emergency at scale, with the real CLI on the real PostgreSQL: the new keys and the
 * global not-before commit first, then sessions end in bounded batches. `rekey emergency` is
 * SIGKILLed half-way through its sweep (failpoint `emergency:sweep-batch`, after its first
 * batch): the keys and the not-before are in, part of the sessions ended, the rest still
 * marked for the sweep. Re-running the command finishes; so does the scheduler's lease
 * holder (`resumeSessionSweep`) without any operator.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { auditHasher, auditWrite } from '../../src/service/audit/audit-hash.ts'
import { newManagedKey } from '../../src/service/keys/keys.ts'
import { KeyRotation } from '../../src/service/keys/rotation.ts'
import { NOT_BEFORE_SETTING } from '../../src/service/auth/revocations.ts'
import { EMERGENCY_SWEEP_SETTING } from '../../src/service/sessions/session-maintenance.ts'
import { openStore } from '../../src/store/open.ts'
import type { Store } from '../../src/store/store.ts'
import { runRekey, spawnRekey, urlWithSchema } from '../multi-instance/cluster.ts'
import { POSTGRES_URL, REQUIRE_POSTGRES, adminQuery, freshSchema } from '../store/support/stores.ts'

const LIVE = 12_000
const EXPIRED = 500
const HOUR = 3_600_000

describe('emergency sweep: kill -9 half-way (PostgreSQL, real CLI)', { skip: POSTGRES_URL === '' && !REQUIRE_POSTGRES ? 'REKEY_TEST_POSTGRES_URL is not set' : false }, () => {
  let schema: string
  let dir: string
  let masterKey: Buffer
  let env: Record<string, string>
  let store: Store

  /** Families still live (unrevoked, unexpired). */
  async function liveFamilies(): Promise<number> {
    const { rows } = await adminQuery(`SELECT COUNT(*)::int AS n FROM ${schema}.session_families WHERE revoked_at IS NULL AND expires_at > $1`, [Date.now()])
    return (rows[0] as { n: number }).n
  }

  /** Keys, one user and LIVE live sessions plus EXPIRED expired ones, bulk-loaded. */
  async function seed(): Promise<void> {
    const now = Date.now()
    await store.transitionKeys({
      expectedVersion: await store.getKeysetVersion(),
      insert: [newManagedKey(masterKey, 'access', now), newManagedKey(masterKey, 'refresh', now)],
      audit: auditWrite(auditHasher(masterKey), { at: now, secret: 'jwt-access,jwt-refresh', operator: 'seed', method: 'create', notes: 'first start', requestId: null }),
    })
    const refreshKid = (await store.listKeys('refresh'))[0]?.kid as string
    await adminQuery(`INSERT INTO ${schema}.users (id, email, password_hash, created_at) VALUES ('u1', 'u1@example.test', 'x', $1)`, [now])
    await adminQuery(`INSERT INTO ${schema}.session_families (id, user_id, created_at, expires_at)
      SELECT 'f' || g, 'u1', $1::bigint - 1000, CASE WHEN g <= $3 THEN $1::bigint - ${HOUR} ELSE $1::bigint + 7 * 24 * ${HOUR} END
      FROM generate_series(1, $2::int + $3::int) g`, [now, LIVE, EXPIRED])
    await adminQuery(`INSERT INTO ${schema}.refresh_tokens (token_hash, family_id, kid, issued_at, expires_at)
      SELECT 'h' || id, id, $1, created_at, expires_at FROM ${schema}.session_families`, [refreshKid])
  }

  before(async () => {
    schema = freshSchema()
    await adminQuery(`CREATE SCHEMA ${schema}`)
    dir = mkdtempSync(join(tmpdir(), 'rekey-sweep-'))
    masterKey = randomBytes(32)
    env = { REKEY_STORE: urlWithSchema(POSTGRES_URL, schema), REKEY_MASTER_KEY: masterKey.toString('base64') }
    store = await openStore(POSTGRES_URL, { schema, max: 2 })
  })
  after(async () => {
    await store?.close()
    rmSync(dir, { recursive: true, force: true })
    await adminQuery(`DROP SCHEMA IF EXISTS ${schema} CASCADE`)
  })

  test('keys and not-before commit first; killed after one batch; the rerun ends the rest', { timeout: 60_000 }, async () => {
    await seed()
    assert.equal(await liveFamilies(), LIVE)
    const keysBefore = (await store.listKeys()).map((k) => k.kid).sort()

    const p = spawnRekey(['emergency', '--reason', 'sweep drill'], { cwd: dir, env: { ...env, REKEY_FAILPOINTS: 'emergency:sweep-batch' } })
    await p.waitForOutput(/failpoint:emergency:sweep-batch/, 30_000)
    p.child.kill('SIGKILL')
    assert.equal((await p.exited).signal, 'SIGKILL')

    // Committed before the sweep: every old token is already refused by these two.
    const keys = await store.listKeys()
    assert.deepEqual(keys.filter((k) => k.state === 'revoked').map((k) => k.kid).sort(), keysBefore)
    assert.equal(keys.filter((k) => k.state === 'current').length, 2)
    assert.notEqual(await store.getSetting(NOT_BEFORE_SETTING), null)
    // Half-way: one batch ended part of them, the rest is still to do and marked as such.
    const left = await liveFamilies()
    assert.ok(left > 0 && left < LIVE, `one batch ended part of the sessions (${LIVE - left} of ${LIVE})`)
    assert.notEqual(await store.getSetting(EMERGENCY_SWEEP_SETTING), null, 'the unfinished sweep is marked')
    const expiredRevoked = await adminQuery(`SELECT COUNT(*)::int AS n FROM ${schema}.session_families WHERE revoked_at IS NOT NULL AND expires_at <= $1`, [Date.now()])
    assert.equal((expiredRevoked.rows[0] as { n: number }).n, 0, 'expired sessions are left to pruning, not updated')

    const rerun = await runRekey(['--json', 'emergency', '--reason', 'sweep drill, again'], { cwd: dir, env })
    assert.equal(rerun.code, 0, rerun.stderr)
    const report = JSON.parse(rerun.stdout) as { sessionsEnded: number }
    assert.equal(report.sessionsEnded, left, 'the rerun counts exactly the sessions it ended')
    assert.match(rerun.stderr, /emergency: keys and not-before committed; \d+ session\(s\) ended, done/)
    assert.equal(await liveFamilies(), 0)
    assert.equal(await store.getSetting(EMERGENCY_SWEEP_SETTING), null, 'the marker is cleared once done')
  })

  test('without a rerun, the lease holder finishes an interrupted sweep', { timeout: 60_000 }, async () => {
    const now = Date.now()
    await adminQuery(`INSERT INTO ${schema}.session_families (id, user_id, created_at, expires_at)
      SELECT 'g' || g, 'u1', $1::bigint, $1::bigint + ${HOUR} FROM generate_series(1, $2::int) g`, [now, 7000])
    const p = spawnRekey(['emergency', '--secret', 'refresh', '--reason', 'second drill'], { cwd: dir, env: { ...env, REKEY_FAILPOINTS: 'emergency:sweep-batch' } })
    await p.waitForOutput(/failpoint:emergency:sweep-batch/, 30_000)
    p.child.kill('SIGKILL')
    await p.exited
    const left = await liveFamilies()
    assert.ok(left > 0, 'sessions are left for the lease holder')

    const rotation = new KeyRotation({ store, masterKey, computeHash: auditHasher(masterKey), accessTokenTtl: 900, refreshTokenTtl: 604_800 })
    assert.equal(await rotation.resumeSessionSweep(60_000), null, 'a sweep younger than the grace is left to its own process')
    assert.equal(await rotation.resumeSessionSweep(0), left)
    assert.equal(await liveFamilies(), 0)
    assert.equal(await store.getSetting(EMERGENCY_SWEEP_SETTING), null)
    assert.equal(await rotation.resumeSessionSweep(0), null, 'nothing pending any more')
  })
})
