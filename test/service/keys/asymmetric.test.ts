/**
 * Managed access keys with an asymmetric algorithm: tokens verify with the published JWKS
 * (as a resource server would, with jose), and a rotation publishes the new key before it
 * signs while the old one stays published through its grace window.
 */
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { createLocalJWKSet, jwtVerify } from 'jose'
import { runCli } from '../../cli/helpers.ts'
import { headerOf, signedIn, testServer, type TestServer } from '../../http/support.ts'

describe('managed EdDSA access keys', () => {
  let server: TestServer
  const jwks = async (): Promise<{ keys: { kid: string, kty: string, alg: string, d?: unknown }[] }> =>
    (await server.request('GET', '/.well-known/jwks.json')).json() as { keys: { kid: string, kty: string, alg: string, d?: unknown }[] }

  before(async () => { server = await testServer({ env: { REKEY_ACCESS_KEY_ALG: 'EdDSA' } }) })
  after(async () => { await server.stop() })

  test('access tokens are EdDSA and verify with the public JWKS alone', async () => {
    const user = await signedIn(server)
    const header = headerOf(user.accessToken)
    assert.equal(header.alg, 'EdDSA')
    const set = await jwks()
    assert.deepEqual(set.keys.map((k) => [k.kid, k.kty, k.alg]), [[header.kid, 'OKP', 'EdDSA']])
    assert.ok(set.keys.every((k) => k.d === undefined), 'no private part is published')
    const { payload } = await jwtVerify(user.accessToken, createLocalJWKSet(set as never))
    assert.equal(payload.token_use, 'access')
    // Refresh tokens stay HMAC: only rekey reads them.
    assert.equal(headerOf(user.refreshToken).alg, 'HS256')
  })

  test('a rotation from the CLI keeps the algorithm and publishes old and new keys', async () => {
    const before = await signedIn(server)
    const oldKid = headerOf(before.accessToken).kid as string
    // The CLI does not set REKEY_ACCESS_KEY_ALG: the new key keeps the current key's algorithm.
    const r = await runCli(['--store', join(server.dir, 'rekey.db'), 'rotate', '--secret', 'access', '--publish-delay', '1'], { REKEY_ARGON2_MEMORY_KIB: '64', REKEY_ARGON2_TIME_COST: '1' })
    assert.equal(r.code, 0, r.stderr)
    const after = await signedIn(server)
    const newKid = headerOf(after.accessToken).kid as string
    assert.notEqual(newKid, oldKid)
    assert.equal(headerOf(after.accessToken).alg, 'EdDSA')
    const set = await jwks()
    assert.deepEqual(set.keys.map((k) => k.kid).sort(), [newKid, oldKid].sort())
    const local = createLocalJWKSet(set as never)
    await jwtVerify(before.accessToken, local)
    await jwtVerify(after.accessToken, local)
  })
})
