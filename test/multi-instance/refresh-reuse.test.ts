/**
 * A stolen refresh token ends the thief's access token too (issue 12, item 2): two real
 * `rekey serve` processes on one PostgreSQL schema. The thief refreshes, the victim then uses
 * the old refresh token (reuse), and the thief's access token, which carries its session id
 * (`sid`), is refused on both instances within a second of the reuse.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import { POSTGRES_URL, REQUIRE_POSTGRES, adminQuery } from '../store/support/stores.ts'
import { me, post, signUp, startServe, until, urlWithSchema, type ServeProc, type TokenPair } from './cluster.ts'

const skip = POSTGRES_URL === '' && !REQUIRE_POSTGRES ? 'REKEY_TEST_POSTGRES_URL is not set; multi-instance PostgreSQL test skipped' : false

const admin = async (sql: string): Promise<void> => { await adminQuery(sql) }

function claimsOf(token: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8')) as Record<string, unknown>
}

describe('refresh-token reuse on two instances (PostgreSQL)', { skip }, () => {
  test('the thief\'s access token gets 401 on both instances within 1 s; the user\'s other sessions keep working', async () => {
    if (POSTGRES_URL === '') throw new Error('REKEY_REQUIRE_POSTGRES=1 but REKEY_TEST_POSTGRES_URL is not set')
    const schema = `rekey_reuse_${randomBytes(6).toString('hex')}`
    const dir = mkdtempSync(join(tmpdir(), 'rekey-reuse-'))
    // Overlap 0: the victim's second use is reuse at once, not a retry inside the overlap window.
    const env = { REKEY_STORE: urlWithSchema(POSTGRES_URL, schema), REKEY_MASTER_KEY: randomBytes(32).toString('base64'), REKEY_REFRESH_OVERLAP: '0' }
    await admin(`CREATE SCHEMA ${schema}`)
    const procs: ServeProc[] = []
    try {
      // Started together: the first migrates the schema, the second waits on the migration lock.
      procs.push(...await Promise.all([startServe({ cwd: dir, env }), startServe({ cwd: dir, env })]))
      const [a, b] = procs as [ServeProc, ServeProc]
      const victim = await signUp(a.url)
      assert.equal(typeof claimsOf(victim.accessToken).sid, 'string', 'access tokens carry their session id')
      // A second session of the same user (another device): it must survive.
      const other = await (await post(`${b.url}/api/auth/login`, { email: victim.email, password: victim.password })).json() as TokenPair
      assert.notEqual(claimsOf(other.accessToken).sid, claimsOf(victim.accessToken).sid)

      const thiefRefresh = await post(`${a.url}/api/auth/refresh`, { refreshToken: victim.refreshToken })
      assert.equal(thiefRefresh.status, 200)
      const thief = await thiefRefresh.json() as TokenPair
      assert.equal(claimsOf(thief.accessToken).sid, claimsOf(victim.accessToken).sid, 'a refreshed access token keeps its session id')
      for (const p of procs) assert.equal((await me(p.url, thief.accessToken)).status, 200, 'the thief\'s token works before the reuse')
      await new Promise((resolve) => setTimeout(resolve, 5)) // past the 0 ms overlap window

      const reuse = await post(`${b.url}/api/auth/refresh`, { refreshToken: victim.refreshToken })
      assert.equal(reuse.status, 401)
      assert.equal((await reuse.json() as { error: string }).error, 'ERR_TOKEN_REVOKED')
      const refusedAt = Date.now()
      const elapsed = await Promise.all(procs.map((p) => until(async () => (await me(p.url, thief.accessToken)).status === 401, 1000, `401 on ${p.url}`, 5)))
      const worst = Math.max(...elapsed)
      assert.ok(Date.now() - refusedAt <= 1000 + 50, `refused on both instances ${worst} ms after the reuse`)
      const body = await (await me(a.url, thief.accessToken)).json() as { error: string }
      assert.equal(body.error, 'ERR_TOKEN_REVOKED')
      // The thief's refresh token and the victim's old access token belong to the ended family too.
      assert.equal((await post(`${a.url}/api/auth/refresh`, { refreshToken: thief.refreshToken })).status, 401)
      for (const p of procs) assert.equal((await me(p.url, victim.accessToken)).status, 401)
      // The other session is another family: untouched.
      for (const p of procs) assert.equal((await me(p.url, other.accessToken)).status, 200)
    } finally {
      await Promise.all(procs.map((p) => p.stop()))
      rmSync(dir, { recursive: true, force: true })
      await admin(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).catch(() => {})
    }
  })
})
