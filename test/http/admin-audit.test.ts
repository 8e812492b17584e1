/**
 * The admin API's audit routes and the CLI agree across a master-key rotation: both verify the
 * chain segment by segment (issue 9, item 1). Before one audit module, `GET
 * /api/admin/audit/verify` checked the whole chain under the current key only (ok:false, first
 * bad row 1, after a rotation and a restart) and `POST /api/admin/record` hashed under the
 * current key even while the chain still ran under REKEY_MASTER_KEY_PREV.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { runCli } from '../cli/helpers.ts'
import { testServer, type TestServer } from './support.ts'

const b64 = (key: Buffer): string => key.toString('base64')

describe('admin audit routes across a master-key rotation', () => {
  const oldKey = randomBytes(32)
  const newKey = randomBytes(32)
  const email = 'ops@example.test'
  const password = 'correct horse battery staple'
  let dir: string
  let db: string
  const cli = (env: Record<string, string>, ...argv: string[]) => runCli(['--store', db, '--operator', 'ops', ...argv], env)
  const start = (env: Record<string, string>): Promise<TestServer> => testServer({ dir, env: { REKEY_SCHEDULER: 'off', ...env } })
  async function adminToken(server: TestServer): Promise<string> {
    const login = await server.request('POST', '/api/auth/login', { body: { email, password } })
    assert.equal(login.statusCode, 200, login.body)
    return (login.json() as { accessToken: string }).accessToken
  }
  const verifyOver = async (server: TestServer, token: string) => {
    const r = await server.request('GET', '/api/admin/audit/verify', { token })
    assert.equal(r.statusCode, 200, r.body)
    return r.json() as { ok: boolean, rows: number, firstBad?: { seq: number } }
  }
  const record = async (server: TestServer, token: string, name: string) => {
    const r = await server.request('POST', '/api/admin/record', { token, body: { name, notes: 'rotated in the console' } })
    assert.equal(r.statusCode, 200, r.body)
  }

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'rekey-admin-audit-'))
    db = join(dir, 'rekey.db')
    const server = await start({ REKEY_MASTER_KEY: b64(oldKey) })
    await server.stop()
    const created = await cli({ REKEY_MASTER_KEY: b64(oldKey), ADMIN_PW: password, REKEY_ARGON2_MEMORY_KIB: '64', REKEY_ARGON2_TIME_COST: '1' },
      'admin', 'create', '--email', email, '--password-env', 'ADMIN_PW')
    assert.equal(created.code, 0, created.stderr)
  })
  after(() => rmSync(dir, { recursive: true, force: true }))

  test('during the rollout (both keys set, rotation not yet run) /api/admin/record keeps the chain under the old key', async () => {
    const both = await start({ REKEY_MASTER_KEY: b64(newKey), REKEY_MASTER_KEY_PREV: b64(oldKey) })
    try {
      const token = await adminToken(both)
      await record(both, token, 'SMTP_PASSWORD')
      const report = await verifyOver(both, token)
      assert.equal(report.ok, true, JSON.stringify(report))
    } finally {
      await both.stop()
    }
    // The old key alone still verifies every row: nothing was hashed under the new one yet.
    const cliVerify = await cli({ REKEY_MASTER_KEY: b64(oldKey) }, 'audit', '--verify')
    assert.equal(cliVerify.code, 0, cliVerify.stderr)
  })

  test('a running instance follows the rotation: rows recorded after it are hashed under the new key', async () => {
    const both = await start({ REKEY_MASTER_KEY: b64(newKey), REKEY_MASTER_KEY_PREV: b64(oldKey) })
    try {
      const token = await adminToken(both)
      const rotated = await cli({ REKEY_MASTER_KEY: b64(newKey), REKEY_MASTER_KEY_PREV: b64(oldKey) }, 'rotate', '--secret', 'master-key')
      assert.equal(rotated.code, 0, rotated.stderr)
      // The settings change reaches the instance through the store's change feed.
      const deadline = Date.now() + 5000
      let report = await verifyOver(both, token)
      await record(both, token, 'TWILIO_TOKEN')
      while (Date.now() < deadline) {
        report = await verifyOver(both, token)
        if (report.ok) break
        await new Promise((resolve) => setTimeout(resolve, 100))
      }
      assert.equal(report.ok, true, JSON.stringify(report))
    } finally {
      await both.stop()
    }
    const cliVerify = await cli({ REKEY_MASTER_KEY: b64(newKey), REKEY_MASTER_KEY_PREV: b64(oldKey) }, '--json', 'audit', '--verify')
    assert.equal(cliVerify.code, 0, cliVerify.stderr)
  })

  test('after rekey rotate --secret master-key and a restart with the new key only, GET /api/admin/audit/verify says ok, as rekey audit --verify does', async () => {
    // A store of its own, rotated cleanly (the tests above wrote rows during a rollout).
    const own = mkdtempSync(join(tmpdir(), 'rekey-admin-audit-'))
    const ownDb = join(own, 'rekey.db')
    const ownCli = (env: Record<string, string>, ...argv: string[]) => runCli(['--store', ownDb, '--operator', 'ops', ...argv], env)
    try {
      await (await testServer({ dir: own, env: { REKEY_SCHEDULER: 'off', REKEY_MASTER_KEY: b64(oldKey) } })).stop()
      const created = await ownCli({ REKEY_MASTER_KEY: b64(oldKey), ADMIN_PW: password, REKEY_ARGON2_MEMORY_KIB: '64', REKEY_ARGON2_TIME_COST: '1' },
        'admin', 'create', '--email', email, '--password-env', 'ADMIN_PW')
      assert.equal(created.code, 0, created.stderr)
      const rotated = await ownCli({ REKEY_MASTER_KEY: b64(newKey), REKEY_MASTER_KEY_PREV: b64(oldKey) }, 'rotate', '--secret', 'master-key')
      assert.equal(rotated.code, 0, rotated.stderr)
      const fresh = await testServer({ dir: own, env: { REKEY_SCHEDULER: 'off', REKEY_MASTER_KEY: b64(newKey) } })
      try {
        const token = await adminToken(fresh)
        const report = await verifyOver(fresh, token)
        assert.equal(report.ok, true, JSON.stringify(report))
        await record(fresh, token, 'AWS_SECRET_ACCESS_KEY')
        const after = await verifyOver(fresh, token)
        assert.equal(after.ok, true, JSON.stringify(after))
        const cliVerify = await ownCli({ REKEY_MASTER_KEY: b64(newKey) }, '--json', 'audit', '--verify')
        assert.equal(cliVerify.code, 0, cliVerify.stderr)
        assert.equal((JSON.parse(cliVerify.stdout) as { rows: number }).rows, after.rows)
      } finally {
        await fresh.stop()
      }
    } finally {
      rmSync(own, { recursive: true, force: true })
    }
  })
})
