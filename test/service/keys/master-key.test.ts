/**
 * Master-key rotation end to end on SQLite: refusals (exit 2), every key and sealed setting
 * re-wrapped in one transaction, the service running with both keys during the transition
 * and with only the new key afterwards, tokens still verifying, the audit chain verifying
 * across the change (and tampering still detected).
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { DatabaseSync } from 'node:sqlite'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { open, seal } from '../../../src/core/seal.ts'
import { keyInputOf } from '../../../src/service/keys/keys.ts'
import { masterKeyId } from '../../../src/service/audit/segments.ts'
import { openStore } from '../../../src/store/open.ts'
import { runCli } from '../../cli/helpers.ts'
import { signedIn, testServer } from '../../http/support.ts'

const b64 = (key: Buffer): string => key.toString('base64')

describe('rekey rotate --secret master-key', () => {
  const oldKey = randomBytes(32)
  const newKey = randomBytes(32)
  let dir: string
  let db: string
  let user: Awaited<ReturnType<typeof signedIn>>
  const cli = (env: Record<string, string>, ...argv: string[]) => runCli(['--store', db, '--operator', 'ops', ...argv], env)

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'rekey-master-'))
    db = join(dir, 'rekey.db')
    const server = await testServer({ dir, env: { REKEY_MASTER_KEY: b64(oldKey), REKEY_SCHEDULER: 'off' } })
    user = await signedIn(server)
    await server.service.rotation.rotate({ secret: 'access', actor: { operator: 'alice', requestId: null } })
    // A db-rotation URL sealed in the store, as rotate-db keeps it.
    await server.service.store.upsertSecret({ name: 'DATABASE_URL', kind: 'database', cadenceDays: 180 })
    await server.service.store.setSetting('secret.DATABASE_URL', seal(oldKey, 'postgres://app_a:pw@db/app', 'setting:secret.DATABASE_URL'))
    await server.stop()
  })
  after(() => rmSync(dir, { recursive: true, force: true }))

  test('refused (exit 2) without REKEY_MASTER_KEY_PREV, or when it does not open the keys; nothing changes', async () => {
    const missing = await cli({ REKEY_MASTER_KEY: b64(newKey) }, 'rotate', '--secret', 'master-key')
    assert.equal(missing.code, 2)
    assert.match(missing.stderr, /REKEY_MASTER_KEY_PREV must hold the master key the store is sealed with/)
    const wrong = await cli({ REKEY_MASTER_KEY: b64(newKey), REKEY_MASTER_KEY_PREV: b64(randomBytes(32)) }, '--json', 'rotate', '--secret', 'master-key')
    assert.equal(wrong.code, 2)
    assert.deepEqual(Object.keys(JSON.parse(wrong.stderr) as object), ['error', 'message'])
    assert.match(wrong.stderr, /REKEY_MASTER_KEY_PREV does not open/)
    const store = await openStore(db)
    try {
      assert.ok((await store.listKeys()).every((k) => keyInputOf(oldKey, k) !== undefined), 'still sealed under the old key')
    } finally {
      await store.close()
    }
  })

  test('a service with both keys runs during the transition; its audit rows stay chained under the old key', async () => {
    const both = await testServer({ dir, env: { REKEY_MASTER_KEY: b64(newKey), REKEY_MASTER_KEY_PREV: b64(oldKey), REKEY_SCHEDULER: 'off' } })
    try {
      assert.equal((await both.request('GET', '/api/auth/me', { token: user.accessToken })).statusCode, 200)
      await both.service.rotation.rollback({ secret: 'access', actor: { operator: 'alice', requestId: null } })
    } finally {
      await both.stop()
    }
    const verify = await cli({ REKEY_MASTER_KEY: b64(oldKey) }, 'audit', '--verify')
    assert.equal(verify.code, 0, verify.stderr)
  })

  test('re-wraps every key and sealed setting, audited; idempotent', async () => {
    const env = { REKEY_MASTER_KEY: b64(newKey), REKEY_MASTER_KEY_PREV: b64(oldKey) }
    const r = await cli(env, '--json', 'rotate', '--secret', 'master-key')
    assert.equal(r.code, 0, r.stderr)
    const report = JSON.parse(r.stdout) as { changed: boolean, keys: number, settings: string[], newKeyId: string, audit: { rotation: number, anchor: number } }
    assert.deepEqual([report.changed, report.keys, report.settings, report.newKeyId], [true, 3, ['secret.DATABASE_URL'], masterKeyId(newKey)])
    assert.ok(!r.stdout.includes(b64(newKey)) && !r.stdout.includes(b64(oldKey)))
    const store = await openStore(db)
    try {
      for (const k of await store.listKeys()) {
        assert.ok(keyInputOf(newKey, k))
        assert.throws(() => keyInputOf(oldKey, k), /does not open/)
      }
      assert.equal(open(newKey, await store.getSetting('secret.DATABASE_URL') as string, 'setting:secret.DATABASE_URL').toString(), 'postgres://app_a:pw@db/app')
      const rows = await store.listAudit()
      assert.deepEqual(rows.slice(-2).map((x) => [x.seq, x.operator, x.method]), [[report.audit.rotation, 'ops', 'master-key-rotate'], [report.audit.anchor, 'ops', 'master-key-anchor']])
      assert.equal((await store.getSecret('master-key'))?.lastMethod, 'rotate')
    } finally {
      await store.close()
    }
    const again = await cli(env, 'rotate', '--secret', 'master-key')
    assert.equal(again.code, 0)
    assert.match(again.stdout, /nothing to do/)
  })

  test('afterwards the service starts with only the new key; old tokens verify and refresh; audit --verify passes', async () => {
    const server = await testServer({ dir, env: { REKEY_MASTER_KEY: b64(newKey), REKEY_SCHEDULER: 'off' } })
    try {
      assert.equal((await server.request('GET', '/api/auth/me', { token: user.accessToken })).statusCode, 200)
      assert.equal((await server.request('POST', '/api/auth/refresh', { body: { refreshToken: user.refreshToken } })).statusCode, 200)
      await server.service.rotation.rotate({ secret: 'refresh', actor: { operator: 'alice', requestId: null } })
    } finally {
      await server.stop()
    }
    const onlyNew = await cli({ REKEY_MASTER_KEY: b64(newKey) }, 'audit', '--verify')
    assert.equal(onlyNew.code, 0, onlyNew.stderr)
    const withPrev = await cli({ REKEY_MASTER_KEY: b64(newKey), REKEY_MASTER_KEY_PREV: b64(oldKey) }, 'audit', '--verify')
    assert.equal(withPrev.code, 0, withPrev.stderr)
    const oldOnly = await cli({ REKEY_MASTER_KEY: b64(oldKey) }, 'audit', '--verify')
    assert.equal(oldOnly.code, 1)
    assert.match(oldOnly.stderr, /chained under master key k:[0-9a-f]{16}, which was not given/)
  })

  test('an edited row before the change is still detected: by the anchor with the new key, by row with both', async () => {
    const sqlite = new DatabaseSync(db)
    sqlite.prepare("UPDATE audit_events SET notes = notes || ' (edited)' WHERE seq = 2").run()
    sqlite.close()
    const onlyNew = await cli({ REKEY_MASTER_KEY: b64(newKey) }, 'audit', '--verify')
    assert.equal(onlyNew.code, 1)
    assert.match(onlyNew.stderr, /rows 1\.\.\d+ do not match the digest anchor row \d+ recorded/)
    const withPrev = await cli({ REKEY_MASTER_KEY: b64(newKey), REKEY_MASTER_KEY_PREV: b64(oldKey) }, 'audit', '--verify')
    assert.equal(withPrev.code, 1)
    assert.match(withPrev.stderr, /audit chain broken at row 2:/)
  })
})
