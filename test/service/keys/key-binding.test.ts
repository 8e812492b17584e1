/**
 * Key rows are bound to their kid, purpose, algorithm and state: with a real `rekey serve`
 * process and the CLI on a real SQLite file, someone with write access to the database who
 * sets a revoked key back to `previous` does not make its tokens verify again: the running
 * instance refuses the edited key set, `rekey status` and a new `rekey serve` refuse the store
 * loudly. Stores sealed before the binding keep loading and are re-sealed once.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import { describe, test } from 'node:test'
import { seal } from '../../../src/core/seal.ts'
import { auditHasher, auditWrite } from '../../../src/service/audit/audit-hash.ts'
import { openKeyMaterial } from '../../../src/service/keys/keys.ts'
import { openStore } from '../../../src/store/open.ts'
import { runCli } from '../../cli/helpers.ts'
import { FAST_ENV, headerOf, me, signUp, startServe, until } from '../../multi-instance/cluster.ts'

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

function tempDir(t: { after: (fn: () => void) => void }): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'rekey-binding-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

describe('key rows bound to their state', () => {
  test('UPDATE keys SET state = previous on a revoked key: its token stays refused, the edit is refused loudly everywhere', async (t) => {
    const dir = tempDir(t)
    const storePath = path.join(dir, 'rekey.db')
    const env = { ...FAST_ENV, REKEY_MASTER_KEY: randomBytes(32).toString('base64') }
    const server = await startServe({ cwd: dir, env: { ...env, REKEY_STORE: storePath, REKEY_LOG_LEVEL: 'error' } })
    t.after(() => server.stop())
    const user = await signUp(server.url)
    const oldKid = headerOf(user.accessToken).kid as string

    const rotated = await runCli(['--store', storePath, 'rotate', '--secret', 'access'], env)
    assert.equal(rotated.code, 0, rotated.stderr)
    assert.equal((await me(server.url, user.accessToken)).status, 200, 'the previous key still verifies')
    const revoked = await runCli(['--store', storePath, 'revoke', oldKid], env)
    assert.equal(revoked.code, 0, revoked.stderr)
    await until(async () => (await me(server.url, user.accessToken)).status === 401, 5000, 'the revoked key to stop verifying')

    // Behind rekey's back: un-revoke the key, and poke the change counter so instances reload.
    const db = new DatabaseSync(storePath)
    db.exec('PRAGMA busy_timeout = 5000')
    db.prepare("UPDATE keys SET state = 'previous', revoked_at = NULL, revoke_reason = NULL WHERE kid = ?").run(oldKid)
    db.exec("UPDATE change_counters SET counter = counter + 1 WHERE channel = 'keys'")
    db.close()

    for (let i = 0; i < 8; i++) {
      assert.equal((await me(server.url, user.accessToken)).status, 401, 'the token of the revoked key stays refused')
      await sleep(150)
    }
    await until(() => /changed outside rekey/.test(server.stdout.join('') + server.stderr.join('')), 5000, 'the instance to log the refused key set')
    assert.equal(server.child.exitCode, null, 'the running instance keeps serving with the keys it had')

    const status = await runCli(['--store', storePath, 'status'], env)
    assert.equal(status.code, 1)
    assert.match(status.stderr, new RegExp(`^rekey: ERR_UNSAFE: the access key ${oldKid} is stored as previous but rekey left it revoked: its row was changed outside rekey`))

    await server.stop()
    await assert.rejects(startServe({ cwd: dir, env: { ...env, REKEY_STORE: storePath } }), /ERR_UNSAFE.*changed outside rekey/s)

    // Put back as rekey left it: everything loads again, and the token is still refused.
    const fix = new DatabaseSync(storePath)
    fix.prepare("UPDATE keys SET state = 'revoked', revoked_at = ? WHERE kid = ?").run(Date.now(), oldKid)
    fix.close()
    assert.equal((await runCli(['--store', storePath, 'status'], env)).code, 0)
  })

  test('a store sealed before the binding keeps loading; its keys are re-sealed once, audited, and then bound', async (t) => {
    const dir = tempDir(t)
    const storePath = path.join(dir, 'rekey.db')
    const masterKey = randomBytes(32)
    const env = { ...FAST_ENV, REKEY_MASTER_KEY: masterKey.toString('base64') }
    // As an older rekey wrote them: material sealed with the kid alone as additional data.
    const store = await openStore(storePath)
    const now = Date.now()
    const legacy = (kid: string, purpose: string, state: 'current' | 'previous') => ({
      kid, purpose, alg: 'HS256', state, createdAt: now, activatedAt: now,
      sealedMaterial: seal(masterKey, JSON.stringify({ kty: 'oct', k: randomBytes(32).toString('base64url') }), `rekey/key/${kid}`),
    })
    await store.transitionKeys({
      expectedVersion: 0,
      insert: [legacy('legacyaccess0001', 'access', 'current'), legacy('legacyrefresh001', 'refresh', 'current'), legacy('legacyaccess0000', 'access', 'previous')],
      audit: auditWrite(auditHasher(masterKey), { at: now, secret: 'jwt-access,jwt-refresh', operator: 'old-rekey', method: 'create', notes: 'first start', requestId: null }),
    })
    await store.close()

    const status = await runCli(['--store', storePath, '--json', 'status'], env)
    assert.equal(status.code, 0, status.stderr)
    const reopened = await openStore(storePath)
    const keys = await reopened.listKeys()
    assert.equal(keys.length, 3)
    for (const k of keys) assert.equal(openKeyMaterial([masterKey], k).legacy, false, `${k.kid} is bound now`)
    const rows = await reopened.listAudit()
    assert.equal(rows.filter((r) => r.method === 'reseal').length, 1)
    await reopened.close()
    const again = await runCli(['--store', storePath, 'status'], env)
    assert.equal(again.code, 0, again.stderr)
    const audit = await runCli(['--store', storePath, 'audit', '--verify'], env)
    assert.equal(audit.code, 0, audit.stderr)
    const after = await openStore(storePath)
    assert.equal((await after.listAudit()).filter((r) => r.method === 'reseal').length, 1, 're-sealed once')
    await after.close()
  })
})
