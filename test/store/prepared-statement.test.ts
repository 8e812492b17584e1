/**
 * The refresh statement is prepared once per PostgreSQL connection (parsed and planned once,
 * not on every refresh). Where prepared statements do not stay on a connection (a pooler in
 * transaction mode hands the client another server connection), the server answers 26000 or
 * 42P05 before running anything: the store runs the refresh unnamed, once, reports it, and
 * prepares nothing from then on. Emulated here on one real connection by dropping the
 * statement behind the driver's back, as such a pooler does.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import pg from 'pg'
import type { RotateResult, Store } from '../../src/store/store.ts'
import { postgresFactory, type TestDatabase } from './support/stores.ts'
import { T0, newUser, rotate, session, sha256 } from './support/fixtures.ts'

/** What the store sends while `fn` runs: the statement's name, or `-` for an unnamed one. */
async function watch(fn: () => Promise<unknown>, before?: (client: pg.Client, name: string) => Promise<unknown>): Promise<string[]> {
  const sent: string[] = []
  const original = pg.Client.prototype.query
  pg.Client.prototype.query = function (this: pg.Client, ...args: unknown[]) {
    const first = args[0] as { name?: string } | string
    const name = typeof first === 'object' && first !== null && typeof first.name === 'string' ? first.name : '-'
    sent.push(name)
    const run = (): unknown => (original as (...a: unknown[]) => unknown).apply(this, args)
    if (name === '-' || before === undefined) return run()
    return before(this, name).then(run)
  } as typeof original
  try {
    await fn()
  } finally {
    pg.Client.prototype.query = original
  }
  return sent
}

describe('the prepared refresh statement (PostgreSQL)', { skip: postgresFactory.skip }, () => {
  let db: TestDatabase
  let store: Store
  const reported: string[] = []
  before(async () => {
    // One connection, so the statement prepared by one call is the one the next call finds gone.
    db = await postgresFactory.create({ max: 1, onError: (err) => reported.push((err as Error).message) })
    store = db.store
  })
  after(async () => { await db?.destroy() })

  it('is sent by name, then falls back to unnamed once the server no longer holds it', async () => {
    const userId = await newUser(store)
    await store.createFamily(session(userId, 'p-0'))
    let outcome: RotateResult | undefined
    assert.deepEqual(await watch(async () => { outcome = await rotate(store, 'p-0', 'p-1', T0 + 1) }), ['rekey_rotate_token'])
    assert.equal(outcome?.outcome, 'rotated')
    assert.deepEqual(reported, [])

    // The pooler's other server connection: the statement the driver prepared is not there.
    const dropped = async (client: pg.Client, name: string): Promise<unknown> => await client.query(`DEALLOCATE ${name}`)
    const sent = await watch(async () => { outcome = await rotate(store, 'p-1', 'p-2', T0 + 2) }, dropped)
    assert.equal(outcome?.outcome, 'rotated', 'the refresh succeeds, run unnamed')
    assert.deepEqual(sent.filter((n) => n !== '-'), ['rekey_rotate_token'], 'one named attempt')
    assert.equal(reported.length, 1)
    assert.match(reported[0] ?? '', /run unnamed from now on \(26000\)/)
    // The refused attempt ran nothing: one successor, and the token is now used (overlap).
    assert.notEqual(await store.getRefreshToken(sha256('p-2')), null)
    assert.equal((await rotate(store, 'p-1', 'p-2b', T0 + 3)).outcome, 'overlap')
    assert.equal(await store.getRefreshToken(sha256('p-2b')), null)

    assert.deepEqual(await watch(async () => { outcome = await rotate(store, 'p-2', 'p-3', T0 + 4) }), ['-'], 'unnamed from then on')
    assert.equal(outcome?.outcome, 'rotated')
    assert.equal(reported.length, 1)
  })
})
