/** Managed keys: first start, the master-key file, propagation of a key change without restart; env mode. */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { newManagedKey, rebindKeyUpdates } from '../../../src/service/keys/keys.ts'
import { headerOf, signedIn, testServer } from '../../http/support.ts'

test('first start on SQLite: a 0600 master.key beside the store, one current key per purpose, an audit event; a restart reuses them', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'rekey-keys-'))
  try {
    const first = await testServer({ dir })
    const kids = [first.service.keys.access.currentKid, first.service.keys.refresh.currentKid]
    const file = join(dir, 'master.key')
    assert.equal(statSync(file).mode & 0o777, 0o600)
    assert.equal(Buffer.from(readFileSync(file, 'utf8').trim(), 'base64').length, 32)
    assert.match(first.logs.text, /production must set REKEY_MASTER_KEY/)
    const keys = await first.service.store.listKeys()
    assert.deepEqual(keys.map((k) => [k.purpose, k.state]).sort(), [['access', 'current'], ['refresh', 'current']])
    assert.ok(keys.every((k) => k.sealedMaterial.startsWith('v1.')))
    const audit = await first.service.store.listAudit()
    assert.deepEqual(audit.map((row) => [row.method, row.secret]), [
      ['create', 'jwt-access,jwt-refresh'],
      ['track', 'jwt-access'], ['track', 'jwt-refresh'], ['track', 'master-key'],
    ])
    assert.deepEqual((await first.service.store.listSecrets()).map((s) => s.name).sort(), ['jwt-access', 'jwt-refresh', 'master-key'])
    const user = await signedIn(first)
    await first.stop()
    const again = await testServer({ dir })
    try {
      assert.deepEqual([again.service.keys.access.currentKid, again.service.keys.refresh.currentKid], kids)
      assert.equal((await again.request('GET', '/api/auth/me', { token: user.accessToken })).statusCode, 200, 'tokens survive a restart')
      assert.equal((await again.service.store.listAudit()).length, 4, 'a restart adds no audit row')
    } finally {
      await again.stop()
    }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})

test('a key change in the store reaches a running instance without a restart', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'rekey-keys-'))
  const server = await testServer({ dir })
  try {
    const user = await signedIn(server)
    const store = server.service.store
    const oldKid = server.service.keys.access.currentKid
    const masterKey = Buffer.from(readFileSync(join(dir, 'master.key'), 'utf8').trim(), 'base64')
    // What a rotation will do: the new key signs, the old one verifies as previous.
    const fresh = newManagedKey(masterKey, 'access', Date.now())
    const { version, keys } = await store.getKeyset()
    // A state change re-seals the key for its new state, as the lifecycle does (the binding moves with it).
    const update = rebindKeyUpdates([masterKey], keys, [{ kid: oldKid, expectState: 'current', state: 'previous', demotedAt: Date.now() }])
    await store.transitionKeys({ expectedVersion: version, update, insert: [fresh] })
    const start = Date.now()
    while (server.service.keys.access.currentKid !== fresh.kid) {
      if (Date.now() - start > 2000) throw new Error('the new key did not arrive')
      await new Promise((r) => setTimeout(r, 10))
    }
    assert.equal(server.service.keys.version, version + 1)
    assert.equal((await server.request('GET', '/api/auth/me', { token: user.accessToken })).statusCode, 200, 'the old key still verifies')
    const login = await server.request('POST', '/api/auth/login', { body: { email: user.email, password: user.password } })
    assert.equal(headerOf(login.json().accessToken).kid, fresh.kid)
  } finally {
    await server.stop()
    rmSync(dir, { recursive: true, force: true })
  }
})

test('env mode: keys from JWT_ACCESS_SECRET/JWT_REFRESH_SECRET; nothing stored; the kid is derived from the secret', async () => {
  const env = { JWT_ACCESS_SECRET: randomBytes(32).toString('hex'), JWT_REFRESH_SECRET: randomBytes(32).toString('hex'), REKEY_MASTER_KEY: randomBytes(32).toString('base64') }
  const a = await testServer({ env })
  const b = await testServer({ env })
  try {
    assert.equal(a.service.keys.source, 'env')
    assert.equal(a.service.keys.access.currentKid, b.service.keys.access.currentKid)
    assert.deepEqual(await a.service.store.listKeys(), [])
    const user = await signedIn(a)
    assert.equal(headerOf(user.accessToken).kid, a.service.keys.access.currentKid)
  } finally {
    await Promise.all([a.stop(), b.stop()])
  }
})
