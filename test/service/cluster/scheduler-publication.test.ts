/**
 * The scheduler and the publication delay, with a frozen clock: a rotation of an EdDSA
 * access key staged with `noWait` (as `rotate --no-wait` and the admin API do) stays staged
 * and published until REKEY_JWKS_MAX_AGE has passed, and the first tick after that promotes it.
 */
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { TestClock, testServer, type TestServer } from '../../http/support.ts'

describe('the scheduler promotes a staged asymmetric key once it has been published long enough', () => {
  let server: TestServer
  let clock: TestClock
  before(async () => {
    clock = new TestClock(Date.UTC(2026, 3, 1, 8))
    server = await testServer({ clock, env: { REKEY_ACCESS_KEY_ALG: 'EdDSA', REKEY_JWKS_MAX_AGE: '300', REKEY_SCHEDULER_INTERVAL: '86400' } })
  })
  after(async () => { await server.stop() })

  test('staged and published at once; promoted by the first tick after 300 s, not before', async () => {
    const { rotation, scheduler, keys } = server.service
    const staged = await rotation.rotate({ secret: 'access', noWait: true, actor: { operator: 'alice', requestId: null } })
    assert.equal(staged.promoted, false)
    assert.equal(staged.waitingFor, 'publication')
    assert.equal(staged.publishedUntil, new Date(clock.now() + 300_000).toISOString())
    const kid = staged.staged[0]?.kid as string
    const published = async (): Promise<boolean> => {
      const jwks = await server.request('GET', '/.well-known/jwks.json')
      assert.equal(jwks.headers['cache-control'], 'public, max-age=300')
      return (jwks.json() as { keys: { kid: string }[] }).keys.some((k) => k.kid === kid)
    }
    for (let i = 0; i < 100 && !await published(); i++) await new Promise((r) => setTimeout(r, 20))
    assert.ok(await published(), 'in the JWKS while staged')

    clock.advance(299_000)
    await scheduler?.tick()
    assert.notEqual(keys.access.currentKid, kid, 'still publishing: the old key signs')
    clock.advance(2000)
    const tick = await scheduler?.tick()
    assert.deepEqual(tick?.actions.map((a) => [a.job, a.outcome]), [['rotate:access', 'done']])
    const rows = (await server.service.store.listAudit()).filter((r) => r.operator === 'scheduler').map((r) => r.method)
    assert.deepEqual(rows, ['rotate'])
    for (let i = 0; i < 100 && keys.access.currentKid !== kid; i++) await new Promise((r) => setTimeout(r, 20))
    assert.equal(keys.access.currentKid, kid)
  })
})
