/**
 * Live-session counts off the hot path: after a refresh-key rotation, the scheduler's lease
 * holder counts the previous key's live sessions and publishes them; `/metrics` and `status`
 * serve that count with its age instead of counting every session on each scrape.
 */
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { headerOf, signedIn, testServer, type TestServer } from './support.ts'

const METRICS_TOKEN = 'metrics-token-for-tests-0123456789'

describe('live-session counts', () => {
  let server: TestServer
  before(async () => { server = await testServer({ env: { METRICS_AUTH_TOKEN: METRICS_TOKEN } }) })
  after(async () => { await server.stop() })

  test('published by the lease holder for previous refresh keys, served with their age', async () => {
    const users = [await signedIn(server), await signedIn(server)]
    const oldKid = String(headerOf(users[0]!.refreshToken).kid)
    const rotated = await server.service.rotation.rotate({ secret: 'refresh', actor: { operator: 'test', requestId: null }, timeoutMs: 2000 })
    assert.equal(rotated.promoted, true)
    await server.request('POST', '/api/auth/logout', { body: { refreshToken: users[1]!.refreshToken } })

    const tick = await server.service.scheduler?.tick()
    assert.equal(tick?.ran, true)
    server.clock.advance(30_000)
    const res = await server.request('GET', '/metrics', { token: METRICS_TOKEN })
    assert.equal(res.statusCode, 200)
    assert.match(res.body, new RegExp(`rekey_live_sessions\\{kid="${oldKid}"\\} 1\\n`), 'one live session left on the previous key')
    assert.match(res.body, /rekey_live_sessions_age_seconds [\d.]+/)
    assert.doesNotMatch(res.body, new RegExp(`rekey_live_sessions\\{kid="${server.service.keys.refresh.currentKid}"\\}`), 'the current key is not counted')

    const status = await server.service.rotation.status()
    const refresh = status.secrets.find((s) => s.secret === 'refresh')
    assert.equal(refresh?.keys.find((k) => k.kid === oldKid)?.liveSessions, 1)
    assert.equal(refresh?.keys.find((k) => k.state === 'current')?.liveSessions, null)
    assert.match(status.liveSessionsCountedAt, /^\d{4}-\d{2}-\d{2}T/)

    // A refresh moves the last session to the new key: the next tick finalizes the old key
    // (no live session holds it any more) and it is no longer counted.
    assert.equal((await server.request('POST', '/api/auth/refresh', { body: { refreshToken: users[0]!.refreshToken } })).statusCode, 200)
    const second = await server.service.scheduler?.tick()
    assert.ok(second?.actions.some((a) => a.job === 'finalize:refresh' && a.outcome === 'done'), JSON.stringify(second?.actions))
    const after = await server.request('GET', '/metrics', { token: METRICS_TOKEN })
    assert.doesNotMatch(after.body, new RegExp(`rekey_live_sessions\\{kid="${oldKid}"\\}`))
    assert.match(after.body, /rekey_live_sessions_age_seconds [\d.]+/)
  })
})
