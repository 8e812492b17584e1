/**
 * The grace window is never shorter than the longest token lifetime a service issues, even
 * when the operator's CLI runs with a shorter JWT_EXPIRATION than the service.
 */
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { TOKEN_LIFETIMES_SETTING } from '../../../src/service/keys/token-lifetimes.ts'
import { runCli } from '../../cli/helpers.ts'
import { testServer, type TestServer } from '../../http/support.ts'

describe('token lifetimes announced by the service', () => {
  let server: TestServer
  let db: string

  before(async () => {
    server = await testServer({ env: { JWT_EXPIRATION: '2h' } })
    db = join(server.dir, 'rekey.db')
  })
  after(async () => { await server.stop() })

  test('the service announces its lifetimes in the store', async () => {
    const announced = JSON.parse(await server.service.store.getSetting(TOKEN_LIFETIMES_SETTING) ?? '{}') as { access: number, refresh: number }
    assert.deepEqual(announced, { access: 7200, refresh: 604_800 })
  })

  test('a CLI with the default 15m lifetime still keeps the old key for the service\'s 2h', async () => {
    const started = Date.now()
    const env = { REKEY_ARGON2_MEMORY_KIB: '64', REKEY_ARGON2_TIME_COST: '1' }
    const rotated = await runCli(['--store', db, '--json', 'rotate', '--secret', 'access'], env)
    assert.equal(rotated.code, 0, rotated.stderr)
    const previous = (await server.service.store.listKeys('access')).find((k) => k.state === 'previous')
    assert.ok(previous?.retireAfter !== undefined && previous.retireAfter !== null)
    // Demoted now: safe after 2 h + 60 s of skew, not 15 min + 60 s.
    assert.ok(previous.retireAfter >= started + (7200 + 60) * 1000, `retire after ${new Date(previous.retireAfter).toISOString()}`)
    const finalize = await runCli(['--store', db, 'finalize', '--secret', 'access'], env)
    assert.equal(finalize.code, 1)
    assert.match(finalize.stderr, /ERR_UNSAFE/)
  })

  test('a service with a shorter lifetime does not lower what was announced', async () => {
    const second = await testServer({ dir: server.dir, env: { JWT_EXPIRATION: '5m' } })
    try {
      const announced = JSON.parse(await second.service.store.getSetting(TOKEN_LIFETIMES_SETTING) ?? '{}') as { access: number }
      assert.equal(announced.access, 7200)
    } finally {
      await second.stop()
    }
  })
})
