/**
 * kill -9 during each step of the managed lifecycle, with real processes: `rekey ...` runs
 * with REKEY_FAILPOINTS naming one crash point (src/service/failpoints.ts), blocks there, and
 * is SIGKILLed. Then, reading the store afresh: exactly one current key per purpose, no key
 * lost, the key-set version matching its audit rows, the audit chain intact, and the step's
 * own outcome (nothing written, or all of it). Re-running the same command completes.
 * SQLite for every point; PostgreSQL for the rotate points and a kill inside a transaction.
 */
import assert from 'node:assert/strict'
import { randomBytes, randomUUID } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, test } from 'node:test'
import { verifyAuditChain } from '../../src/core/audit-chain.ts'
import { auditHasher, auditWrite } from '../../src/service/audit/audit-hash.ts'
import type { FailpointName } from '../../src/service/failpoints.ts'
import { newManagedKey } from '../../src/service/keys/keys.ts'
import { KeyRotation } from '../../src/service/keys/rotation.ts'
import { NOT_BEFORE_SETTING } from '../../src/service/auth/revocations.ts'
import { openStore } from '../../src/store/open.ts'
import type { Store } from '../../src/store/store.ts'
import type { KeyRecord } from '../../src/store/types.ts'
import { runRekey, spawnRekey, urlWithSchema } from '../multi-instance/cluster.ts'
import { DAY, newUser, session } from '../store/support/fixtures.ts'
import { POSTGRES_URL, REQUIRE_POSTGRES, adminQuery, freshSchema } from '../store/support/stores.ts'

/** Audit methods that move the key-set version: one row per version. */
const KEY_METHODS = new Set(['create', 'rotate-stage', 'rotate', 'rotate-hard', 'finalize', 'finalize-force', 'rollback', 'revoke', 'emergency'])
const PURPOSES = ['access', 'refresh'] as const

/** A store seeded as a first `rekey serve` leaves it (plus one live session), and how to reach it. */
interface Fixture {
  readonly location: string
  readonly masterKey: Buffer
  readonly env: Record<string, string>
  readonly cwd: string
  open(): Promise<Store>
  destroy(): Promise<void>
}

async function seed(fixture: Fixture, rotated: boolean): Promise<void> {
  const store = await fixture.open()
  try {
    const { masterKey } = fixture
    const computeHash = auditHasher(masterKey)
    const now = Date.now()
    const insert = PURPOSES.map((p) => newManagedKey(masterKey, p, now))
    await store.transitionKeys({
      expectedVersion: await store.getKeysetVersion(),
      insert,
      audit: auditWrite(computeHash, { at: now, secret: 'jwt-access,jwt-refresh', operator: 'seed', method: 'create', notes: 'first start', requestId: null }),
    })
    const user = await newUser(store)
    await store.createFamily({ ...session(user, randomUUID(), insert[1]?.kid, now), expiresAt: now + DAY })
    if (rotated) {
      const rotation = new KeyRotation({ store, masterKey, computeHash, accessTokenTtl: 900, refreshTokenTtl: 604_800 })
      assert.equal((await rotation.rotate({ actor: { operator: 'seed', requestId: null }, timeoutMs: 1000 })).promoted, true)
    }
  } finally {
    await store.close()
  }
}

function sqliteFixture(): Fixture {
  const dir = mkdtempSync(join(tmpdir(), 'rekey-crash-'))
  const location = join(dir, 'rekey.db')
  const masterKey = randomBytes(32)
  return {
    location, masterKey, cwd: dir,
    env: { REKEY_STORE: location, REKEY_MASTER_KEY: masterKey.toString('base64') },
    open: () => openStore(location),
    async destroy() { rmSync(dir, { recursive: true, force: true }) },
  }
}

async function postgresFixture(): Promise<Fixture> {
  if (POSTGRES_URL === '') throw new Error('REKEY_REQUIRE_POSTGRES=1 but REKEY_TEST_POSTGRES_URL is not set')
  const schema = freshSchema()
  await adminQuery(`CREATE SCHEMA ${schema}`)
  const location = urlWithSchema(POSTGRES_URL, schema)
  const masterKey = randomBytes(32)
  const dir = mkdtempSync(join(tmpdir(), 'rekey-crash-pg-'))
  return {
    location, masterKey, cwd: dir,
    env: { REKEY_STORE: location, REKEY_MASTER_KEY: masterKey.toString('base64') },
    open: () => openStore(POSTGRES_URL, { schema, max: 2 }),
    async destroy() {
      rmSync(dir, { recursive: true, force: true })
      await adminQuery(`DROP SCHEMA IF EXISTS ${schema} CASCADE`)
    },
  }
}

/** What the store holds, read afresh; fails on any broken invariant. */
async function checkInvariants(fixture: Fixture, kidsBefore: readonly string[]): Promise<{ version: number, keys: KeyRecord[], methods: string[], liveSessions: number, notBefore: string | null }> {
  const store = await fixture.open()
  try {
    const keyset = await store.getKeyset()
    for (const purpose of PURPOSES) {
      const current = keyset.keys.filter((k) => k.purpose === purpose && k.state === 'current')
      assert.equal(current.length, 1, `exactly one current ${purpose} key`)
    }
    const kids = new Set(keyset.keys.map((k) => k.kid))
    for (const kid of kidsBefore) assert.ok(kids.has(kid), `key ${kid} is still in the store`)
    const audit = await store.listAudit()
    const chain = verifyAuditChain(audit, auditHasher(fixture.masterKey))
    assert.ok(chain.ok, `the audit chain verifies: ${JSON.stringify(chain.firstBad)}`)
    assert.equal(keyset.version, audit.filter((a) => KEY_METHODS.has(a.method)).length, 'each key-set version has exactly one audit row')
    const live = [...(await store.countLiveSessionsByKid(Date.now())).values()].reduce((a, b) => a + b, 0)
    return { version: keyset.version, keys: [...keyset.keys], methods: audit.map((a) => a.method), liveSessions: live, notBefore: await store.getSetting(NOT_BEFORE_SETTING) }
  } finally {
    await store.close()
  }
}

type State = Awaited<ReturnType<typeof checkInvariants>>
const inState = (s: State, state: string): KeyRecord[] => s.keys.filter((k) => k.state === state)

interface CrashCase {
  readonly point: FailpointName
  readonly args: readonly string[]
  /** Rotate once before, so there is a previous key (finalize, rollback). */
  readonly rotated?: boolean
  /** A live instance that never loads the staged key: rotate waits for it. */
  readonly staleInstance?: boolean
  /** What the kill left, given the state before it. */
  killed(before: State, after: State): void
  /** What re-running completed. */
  rerun(before: State, after: State, stdout: string): void
}

const CASES: readonly CrashCase[] = [
  {
    point: 'rotate:after-stage',
    args: ['rotate'],
    killed(before, after) {
      assert.equal(after.version, before.version + 1, 'the staging committed')
      assert.equal(inState(after, 'next').length, 2, 'one staged key per purpose')
      assert.equal(after.methods.at(-1), 'rotate-stage')
    },
    rerun(before, after, stdout) {
      const report = JSON.parse(stdout) as { staged: { resumed: boolean }[], promoted: boolean }
      assert.deepEqual(report.staged.map((s) => s.resumed), [true, true], 'rotate resumes with the staged keys')
      assert.equal(report.promoted, true)
      assert.equal(inState(after, 'next').length, 0)
      assert.equal(inState(after, 'previous').length, 2)
    },
  },
  {
    point: 'lifecycle:wait-for-acks',
    args: ['rotate'],
    staleInstance: true,
    killed(before, after) {
      assert.equal(after.version, before.version + 1)
      assert.equal(inState(after, 'next').length, 2, 'killed while waiting: the keys stay staged')
    },
    rerun(before, after, stdout) {
      assert.deepEqual((JSON.parse(stdout) as { staged: { resumed: boolean }[] }).staged.map((s) => s.resumed), [true, true])
      assert.equal(inState(after, 'previous').length, 2)
      assert.equal(inState(after, 'next').length, 0)
    },
  },
  {
    point: 'rotate:promote-in-transaction',
    args: ['rotate'],
    killed(before, after) {
      assert.equal(after.version, before.version + 1, 'the promotion rolled back; only the staging is there')
      assert.equal(inState(after, 'next').length, 2)
      assert.ok(!after.methods.includes('rotate'), 'no audit row for a promotion that did not happen')
    },
    rerun(before, after, stdout) {
      assert.equal((JSON.parse(stdout) as { promoted: boolean }).promoted, true)
      assert.equal(inState(after, 'previous').length, 2)
      assert.equal(after.methods.filter((m) => m === 'rotate').length, 1)
    },
  },
  {
    point: 'rotate:after-promote',
    args: ['rotate'],
    killed(before, after) {
      assert.equal(after.version, before.version + 2, 'staged and promoted')
      assert.equal(inState(after, 'previous').length, 2)
      assert.equal(after.methods.at(-1), 'rotate')
    },
    rerun(before, after) {
      // The rotation was complete; running it again is a second rotation, which cuts nothing.
      assert.equal(inState(after, 'previous').length, 4, 'both generations of old keys still verify')
    },
  },
  {
    point: 'finalize:in-transaction',
    args: ['finalize', '--force'],
    rotated: true,
    killed(before, after) {
      assert.equal(after.version, before.version)
      assert.equal(inState(after, 'previous').length, 2, 'nothing retired')
    },
    rerun(before, after) {
      assert.equal(inState(after, 'previous').length, 0)
      assert.equal(inState(after, 'retired').length, 2)
    },
  },
  {
    point: 'rollback:in-transaction',
    args: ['rollback'],
    rotated: true,
    killed(before, after) {
      assert.equal(after.version, before.version)
      assert.deepEqual(inState(after, 'current').map((k) => k.kid).sort(), inState(before, 'current').map((k) => k.kid).sort())
    },
    rerun(before, after) {
      assert.deepEqual(inState(after, 'current').map((k) => k.kid).sort(), inState(before, 'previous').map((k) => k.kid).sort(), 'the previous keys sign again')
    },
  },
  {
    point: 'emergency:in-transaction',
    args: ['emergency', '--reason', 'crash drill'],
    killed(before, after) {
      assert.equal(after.version, before.version)
      assert.equal(after.liveSessions, 1, 'the sessions were not ended')
      assert.equal(after.notBefore, before.notBefore, 'no not-before was set')
      assert.equal(inState(after, 'revoked').length, 0)
    },
    rerun(before, after) {
      assert.equal(after.liveSessions, 0)
      assert.notEqual(after.notBefore, null)
      assert.deepEqual(inState(after, 'revoked').map((k) => k.kid).sort(), before.keys.map((k) => k.kid).sort(), 'every old key revoked')
    },
  },
  {
    point: 'emergency:after-commit',
    args: ['emergency', '--reason', 'crash drill'],
    killed(before, after) {
      assert.equal(after.version, before.version + 1, 'committed before the kill')
      assert.equal(after.liveSessions, 0)
      assert.equal(inState(after, 'revoked').length, 2)
    },
    rerun(before, after) {
      assert.equal(inState(after, 'revoked').length, 4, 'a second emergency revokes the keys of the first too')
    },
  },
]

const PG_POINTS: ReadonlySet<FailpointName> = new Set(['rotate:after-stage', 'lifecycle:wait-for-acks', 'rotate:promote-in-transaction', 'emergency:in-transaction'])

const dialects = [
  { name: 'sqlite', skip: false as string | false, cases: CASES, fixture: async () => sqliteFixture() },
  {
    name: 'postgres',
    skip: POSTGRES_URL === '' && !REQUIRE_POSTGRES ? 'REKEY_TEST_POSTGRES_URL is not set; PostgreSQL crash tests skipped' : false as string | false,
    cases: CASES.filter((c) => PG_POINTS.has(c.point)),
    fixture: postgresFixture,
  },
]

for (const dialect of dialects) {
  describe(`kill -9 at each step (${dialect.name})`, { skip: dialect.skip, concurrency: 2 }, () => {
    const fixtures: Fixture[] = []
    after(async () => { await Promise.allSettled(fixtures.map((f) => f.destroy())) })

    for (const c of dialect.cases) {
      test(`${c.point}: ${c.args[0]} killed there leaves a consistent store; re-running completes`, async () => {
        const fixture = await dialect.fixture()
        fixtures.push(fixture)
        await seed(fixture, c.rotated === true)
        if (c.staleInstance === true) {
          const store = await fixture.open()
          await store.heartbeat({ instanceId: 'stale-instance', hostname: 'h', pid: 1, keysetVersion: 0, startedAt: Date.now(), lastSeen: Date.now() })
          await store.close()
        }
        const before = await checkInvariants(fixture, [])
        const kids = before.keys.map((k) => k.kid)
        const cli = ['--store', fixture.location, '--operator', 'crash-test', '--json', ...c.args]

        const p = spawnRekey(cli, { cwd: fixture.cwd, env: { ...fixture.env, REKEY_FAILPOINTS: c.point } })
        await p.waitForOutput(new RegExp(`failpoint:${c.point}`), 20_000)
        p.child.kill('SIGKILL')
        assert.equal((await p.exited).signal, 'SIGKILL')
        const killed = await checkInvariants(fixture, kids)
        c.killed(before, killed)

        if (c.staleInstance === true) {
          const store = await fixture.open()
          await store.removeInstance('stale-instance')
          await store.close()
        }
        const again = await runRekey(cli, { cwd: fixture.cwd, env: fixture.env })
        assert.equal(again.code, 0, again.stderr)
        const done = await checkInvariants(fixture, kids)
        c.rerun(before, done, again.stdout)
      })
    }
  })
}
