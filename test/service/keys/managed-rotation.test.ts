/**
 * Managed rotation through the CLI reaching a running service (SQLite, in-process) without a
 * restart: rotate, finalize refusal and force, rollback, revoke, status, the timeout that
 * leaves the key staged, and a second rotate finishing it.
 */
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import { after, before, describe, test } from 'node:test'
import { runBin, runCli, tempDir } from '../../cli/helpers.ts'
import { SqlStore } from '../../../src/store/sql/sql-store.ts'
import { headerOf, signedIn, testServer, type TestServer } from '../../http/support.ts'
import { waitFor } from '../../store/support/fixtures.ts'
import { startServe } from '../../multi-instance/cluster.ts'

describe('managed rotation reaches a running service', () => {
  let server: TestServer
  let db: string
  const cli = async (...argv: string[]): Promise<{ code: number, stdout: string, stderr: string, json: () => Record<string, unknown> }> => {
    const r = await runCli(['--store', db, '--operator', 'alice', ...argv], { REKEY_ARGON2_MEMORY_KIB: '64', REKEY_ARGON2_TIME_COST: '1' })
    return { ...r, json: () => JSON.parse(r.stdout) as Record<string, unknown> }
  }
  const me = async (token: string): Promise<{ status: number, error?: string }> => {
    const res = await server.request('GET', '/api/auth/me', { token })
    return { status: res.statusCode, ...(res.statusCode === 200 ? {} : { error: (res.json() as { error: string }).error }) }
  }

  before(async () => {
    server = await testServer()
    db = join(server.dir, 'rekey.db')
  })
  after(async () => { await server.stop() })

  test('rotate: the new key signs, a token signed before verifies as previous, audited with the operator', async () => {
    const user = await signedIn(server)
    const oldKid = headerOf(user.accessToken).kid as string
    const started = Date.now()
    const r = await cli('--json', 'rotate', '--secret', 'access')
    assert.equal(r.code, 0, r.stderr)
    const report = r.json() as { promoted: boolean, signingEverywhere: boolean, staged: { kid: string }[], instances: { instanceId: string, acknowledged: boolean }[] }
    assert.equal(report.promoted, true)
    assert.equal(report.signingEverywhere, true)
    assert.ok(Date.now() - started < 5000, 'rotate returns well before its timeout')
    assert.deepEqual(report.instances.map((i) => [i.instanceId, i.acknowledged]), [[server.service.instanceId, true]])
    const newKid = report.staged[0]?.kid as string
    assert.notEqual(newKid, oldKid)
    // rotate returned once the instance had loaded the promoted key set: it signs with the new key now.
    assert.equal(server.service.keys.access.currentKid, newKid)
    assert.equal(server.service.keys.access.verify(user.accessToken).state, 'previous')
    assert.equal((await me(user.accessToken)).status, 200)
    const again = await signedIn(server)
    assert.equal(headerOf(again.accessToken).kid, newKid)
    assert.doesNotMatch(r.stdout + r.stderr, new RegExp(user.accessToken.split('.')[2] as string))
    const audit = await server.service.store.listAudit()
    const rows = audit.filter((a) => a.operator === 'alice').map((a) => a.method)
    assert.deepEqual(rows, ['rotate-stage', 'rotate'])
    // The inventory knows when the key rotated, so `rekey due` counts its cadence from now.
    const inventory = await server.service.store.getSecret('jwt-access')
    assert.deepEqual([inventory?.kind, inventory?.cadenceDays, inventory?.lastMethod], ['jwt', 90, 'rotate'])
  })

  test('finalize is refused while old access tokens can be live (exit 1, ERR_UNSAFE, safe time), forced with --force', async () => {
    const user = await signedIn(server)
    const r1 = await cli('rotate', '--secret', 'access')
    assert.equal(r1.code, 0, r1.stderr)
    const refused = await cli('finalize', '--secret', 'access')
    assert.equal(refused.code, 1)
    assert.match(refused.stderr, /^rekey: ERR_UNSAFE: finalize refused: access key \S+: access tokens it signed can be valid until .*finalize is safe from \d{4}-\d\d-\d\dT/)
    assert.equal((await me(user.accessToken)).status, 200)
    const forced = await cli('--json', 'finalize', '--secret', 'access', '--force')
    assert.equal(forced.code, 0, forced.stderr)
    assert.equal(forced.json().forced, true)
    await waitFor(() => server.service.keys.access.list().every((k) => k.state !== 'previous'), 2000, 'the service to load the retired key')
    assert.deepEqual(await me(user.accessToken), { status: 401, error: 'ERR_KEY_RETIRED' })
    const nothing = await cli('finalize', '--secret', 'access')
    assert.equal(nothing.code, 0)
    assert.match(nothing.stdout, /nothing to do/)
  })

  test('rollback: the previous key signs again while it exists; then refused (exit 1)', async () => {
    const before = server.service.keys.access.currentKid
    assert.equal((await cli('rotate', '--secret', 'access')).code, 0)
    const r = await cli('--json', 'rollback', '--secret', 'access')
    assert.equal(r.code, 0, r.stderr)
    await waitFor(() => server.service.keys.access.currentKid === before, 2000, 'the rolled-back key to sign')
    assert.equal((await cli('finalize', '--secret', 'access', '--force')).code, 0)
    const refused = await cli('rollback', '--secret', 'access')
    assert.equal(refused.code, 1)
    assert.match(refused.stderr, /ERR_UNSAFE: rollback refused: the access keys have no previous key/)
  })

  test('revoke: the current key is refused, a previous key stops verifying everywhere, an unknown kid is bad usage', async () => {
    const user = await signedIn(server)
    const oldKid = headerOf(user.accessToken).kid as string
    const current = await cli('revoke', oldKid)
    assert.equal(current.code, 1, current.stderr)
    assert.match(current.stderr, /ERR_UNSAFE: revoke refused: .* is the current access key/)
    assert.equal((await cli('rotate', '--secret', 'access')).code, 0)
    assert.equal((await me(user.accessToken)).status, 200)
    const r = await cli('revoke', oldKid, '--reason', 'seen in a log')
    assert.equal(r.code, 0, r.stderr)
    await waitFor(() => server.service.keys.access.list().some((k) => k.kid === oldKid && k.state === 'revoked'), 2000, 'the revocation to arrive')
    assert.deepEqual(await me(user.accessToken), { status: 401, error: 'ERR_KEY_REVOKED' })
    assert.match((await cli('revoke', oldKid)).stdout, /already revoked/)
    const unknown = await cli('revoke', 'no-such-kid')
    assert.equal(unknown.code, 2)
  })

  test('status: keys with state, share of verifications, live sessions, finalize time; instances with their key-set version', async () => {
    const user = await signedIn(server)
    assert.equal((await cli('rotate', '--secret', 'access')).code, 0)
    await me(user.accessToken)
    await server.service.usage.flush()
    const r = await cli('--json', 'status')
    assert.equal(r.code, 0, r.stderr)
    const status = r.json() as { keysetVersion: number, secrets: { secret: string, phase: string, keys: { kid: string, state: string, share: number, verificationsLastHour: number, liveSessions: number, finalizeSafeAt: string | null }[] }[], instances: { instanceId: string, keysetVersion: number, upToDate: boolean }[] }
    const access = status.secrets.find((s) => s.secret === 'access')
    assert.equal(access?.phase, 'grace')
    const prev = access?.keys.find((k) => k.kid === headerOf(user.accessToken).kid)
    assert.equal(prev?.state, 'previous')
    assert.ok((prev?.verificationsLastHour ?? 0) >= 1 && (prev?.share ?? 0) > 0)
    assert.match(prev?.finalizeSafeAt ?? '', /^\d{4}-/)
    const refresh = status.secrets.find((s) => s.secret === 'refresh')
    // Only previous refresh keys are counted (what finalize waits on): counting the current key would read every session.
    assert.equal(refresh?.keys.find((k) => k.state === 'current')?.liveSessions, null)
    assert.match((status as unknown as { liveSessionsCountedAt: string }).liveSessionsCountedAt, /^\d{4}-/)
    assert.deepEqual(status.instances.map((i) => [i.instanceId, i.keysetVersion, i.upToDate]), [[server.service.instanceId, status.keysetVersion, true]])
    assert.deepEqual((status as unknown as { due: unknown[] }).due, [], 'keys rotated just now are not due')
    const text = await cli('status')
    assert.match(text.stdout, /access {2}phase: grace/)
    assert.match(text.stdout, new RegExp(`${server.service.instanceId}.*key-set v${status.keysetVersion}`))
  })

  test('a live instance that never loads the key: rotate times out (exit 1) leaving it staged; a second rotate finishes', async () => {
    const store = server.service.store
    const stale = { instanceId: 'stale-instance', hostname: 'h', pid: 1, keysetVersion: 0, startedAt: Date.now(), lastSeen: Date.now() }
    await store.heartbeat(stale)
    const r = await cli('rotate', '--secret', 'refresh', '--timeout', '1')
    assert.equal(r.code, 1)
    assert.match(r.stderr, /timed out .* 1 instance\(s\) .*stale-instance.*stays staged as next/)
    const staged = (await store.listKeys('refresh')).find((k) => k.state === 'next')
    assert.ok(staged !== undefined)
    await store.removeInstance('stale-instance')
    const done = await cli('--json', 'rotate', '--secret', 'refresh')
    assert.equal(done.code, 0, done.stderr)
    const report = done.json() as { staged: { kid: string, resumed: boolean }[] }
    assert.deepEqual(report.staged.map((s) => [s.kid, s.resumed]), [[staged.kid, true]])
    assert.equal(server.service.keys.refresh.currentKid, staged.kid)
  })

  test('managed commands refuse a missing store and a wrong master key (exit 2)', async () => {
    const missing = await runCli(['--store', join(server.dir, 'nope', 'rekey.db'), 'status'], {})
    assert.equal(missing.code, 2)
    assert.match(missing.stderr, /no store at/)
    const wrong = await runCli(['--store', db, 'rotate'], { REKEY_MASTER_KEY: Buffer.alloc(32, 7).toString('base64') })
    assert.equal(wrong.code, 2)
    assert.match(wrong.stderr, /master key does not open the keys/)
    const master = await runCli(['--store', db, 'rotate', '--secret', 'master-key'], {})
    assert.equal(master.code, 2)
  })
})

describe('a service that starts while a rotation completes', () => {
  test('loads the key set again once it listens: a change between its first load and its subscription is not missed', async (t) => {
    const dir = tempDir(t)
    const first = await testServer({ dir })
    const db = join(dir, 'rekey.db')
    await first.stop()
    const cli = (...argv: string[]) => runBin(argv, { cwd: first.dir, env: { REKEY_STORE: db } })
    const created = await cli('rotate', '--secret', 'ENCRYPTION_KEY')
    assert.equal(created.code, 0, created.stderr)

    // A whole data-key rotation lands after the service loaded the key set and before it listens
    // (it is not listed yet, so the rotation does not wait for it): its notification is gone.
    const subscribe = Object.getOwnPropertyDescriptor(SqlStore.prototype, 'subscribe')?.value as SqlStore['subscribe']
    t.after(() => { SqlStore.prototype.subscribe = subscribe })
    let rotatedTo = 0
    SqlStore.prototype.subscribe = async function (this: SqlStore, ...args: Parameters<SqlStore['subscribe']>) {
      if (rotatedTo === 0 && new Error().stack?.includes('KeyService.start') === true) {
        const r = await cli('--json', 'rotate', '--secret', 'ENCRYPTION_KEY')
        assert.equal(r.code, 0, r.stderr)
        rotatedTo = (JSON.parse(r.stdout) as { keysetVersion: number }).keysetVersion
      }
      return subscribe.apply(this, args)
    }
    const server = await testServer({ dir })
    t.after(() => server.stop())
    assert.ok(rotatedTo > 0, 'the hook ran')
    assert.equal(server.service.keys.version, rotatedTo, 'the service runs on the key set as it is now')
    // So the next rotation is acknowledged by it, not left waiting for an instance that never reloads.
    const r = await cli('rotate', '--secret', 'ENCRYPTION_KEY', '--timeout', '5s')
    assert.equal(r.code, 0, r.stderr)
  })
})

describe('a service whose reload failed', () => {
  test('tries again by itself, so a rotation staged during a store outage is acknowledged and promoted without another change', async (t) => {
    const dir = tempDir(t)
    const db = join(dir, 'rekey.db')
    const env = { REKEY_STORE: db, REKEY_SCHEDULER: 'off' }
    const serve = await startServe({ cwd: dir, env: { ...env, REKEY_LOG_LEVEL: 'info' } })
    t.after(() => serve.stop())
    const cli = (...argv: string[]) => runBin(argv, { cwd: dir, env })

    // Staged while the service is stopped: it has not loaded the key, so the rotation stays at next.
    serve.child.kill('SIGSTOP')
    let r = await cli('rotate', '--secret', 'refresh', '--timeout', '1s')
    assert.equal(r.code, 1, r.stdout)
    assert.match(r.stderr, /stays staged as next/)
    // It wakes up to the change while its store cannot be read: its reload fails.
    const sqlite = new DatabaseSync(db)
    t.after(() => { if (sqlite.isOpen) sqlite.close() })
    sqlite.exec('ALTER TABLE keys RENAME TO keys_offline')
    serve.child.kill('SIGCONT')
    await serve.waitForOutput(/reloading keys failed/, 10_000)
    // Retried at 1 s and 3 s while the table is gone: the same failure is logged once, not every retry.
    await new Promise((resolve) => setTimeout(resolve, 3500))
    sqlite.exec('ALTER TABLE keys_offline RENAME TO keys')
    sqlite.close()
    await serve.waitForOutput(/reloading keys works again/, 15_000)
    assert.equal(serve.stdout.join('').split('reloading keys failed').length - 1, 1, serve.stdout.join(''))

    // No further change is coming: the service must load the staged key by itself.
    r = await cli('rotate', '--secret', 'refresh', '--timeout', '15s')
    assert.equal(r.code, 0, r.stderr)
    assert.match(r.stdout, /resumed refresh key/)
  })
})
