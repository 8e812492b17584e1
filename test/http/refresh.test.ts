import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { signedIn, testServer, type TestServer } from './support.ts'

describe('refresh-token rotation and reuse detection (frozen clock)', () => {
  let server: TestServer
  before(async () => { server = await testServer() })
  after(async () => { await server.stop() })

  const refresh = (refreshToken: string) => server.request('POST', '/api/auth/refresh', { body: { refreshToken } })

  test('a second use inside the overlap window (10 s) gets the same successor pair', async () => {
    const user = await signedIn(server)
    const first = await refresh(user.refreshToken)
    assert.equal(first.statusCode, 200)
    server.clock.advance(9_000)
    const second = await refresh(user.refreshToken)
    assert.equal(second.statusCode, 200)
    assert.deepEqual(second.json(), first.json(), 'two tabs refreshing at once both get the one successor')
    // The successor is live and keeps rotating.
    const next = await refresh((first.json() as { refreshToken: string }).refreshToken)
    assert.equal(next.statusCode, 200)
  })

  test('a second use after the window ends the whole family and writes an audit event', async () => {
    const user = await signedIn(server)
    const first = (await refresh(user.refreshToken)).json() as { accessToken: string, refreshToken: string }
    const auditBefore = (await server.service.store.listAudit()).length
    server.clock.advance(10_001)
    const reuse = await refresh(user.refreshToken)
    assert.equal(reuse.statusCode, 401)
    assert.equal(reuse.json().error, 'ERR_TOKEN_REVOKED')
    // The successor, held by whoever stole or raced the token, is dead too.
    const successor = await refresh(first.refreshToken)
    assert.equal(successor.statusCode, 401)
    assert.equal(successor.json().error, 'ERR_TOKEN_REVOKED')
    const audit = await server.service.store.listAudit()
    assert.equal(audit.length, auditBefore + 1)
    assert.equal(audit.at(-1)?.method, 'reuse-detected')
    assert.match(audit.at(-1)?.notes ?? '', new RegExp(user.id))
    // A reuse never leaks a token into the audit log.
    assert.doesNotMatch(JSON.stringify(audit), new RegExp(user.refreshToken.split('.')[2] ?? 'x'))
  })

  test('reuse is counted in the metrics', async () => {
    const text = await server.service.metrics.registry.getSingleMetricAsString('rekey_refresh_reuse_detected_total')
    assert.match(text, /rekey_refresh_reuse_detected_total [1-9]/)
  })

  test('a refresh after the session lifetime answers 401', async () => {
    const user = await signedIn(server)
    server.clock.advance(7 * 86_400_000 + 1000)
    const res = await refresh(user.refreshToken)
    assert.equal(res.statusCode, 401)
  })

  test('the successor blob opens only for the token it belongs to (sealed with its hash as AAD)', async () => {
    const user = await signedIn(server)
    await refresh(user.refreshToken)
    const { createHash } = await import('node:crypto')
    const hash = createHash('sha256').update(user.refreshToken).digest('hex')
    const row = await server.service.store.getRefreshToken(hash)
    assert.ok(row?.successorBlob?.startsWith('v1.'))
    assert.ok(!String(row?.successorBlob).includes(user.refreshToken.slice(0, 20)), 'the successor pair is not stored in clear')
  })
})
