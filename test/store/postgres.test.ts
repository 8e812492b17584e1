/** PostgreSQL specifics: concurrent migrations, unreachable servers, recovery after lost connections. */
import assert from 'node:assert/strict'
import { POSTGRES_MIGRATIONS } from '../../src/store/postgres/migrations.ts'
import { after, before, describe, it } from 'node:test'
import { openStore } from '../../src/store/open.ts'
import type { ChangeChannel, Store } from '../../src/store/store.ts'
import { POSTGRES_URL, adminQuery, freshSchema, postgresFactory } from './support/stores.ts'
import type { TestDatabase } from './support/stores.ts'
import { waitFor } from './support/fixtures.ts'

describe('postgres store: unreachable server', () => {
  it('fails fast with ERR_STORE_UNAVAILABLE on a closed port, with the password masked', async () => {
    const started = Date.now()
    await assert.rejects(openStore('postgres://rekey:s3cret-pw@127.0.0.1:1/rekey', { connectionTimeoutMs: 2000 }), (err: Error & { code?: string }) => {
      assert.equal(err.name, 'RekeyError')
      assert.equal(err.code, 'ERR_STORE_UNAVAILABLE')
      assert.match(err.message, /postgres:\/\/rekey:\*\*\*@127\.0\.0\.1:1\/rekey/)
      assert.doesNotMatch(err.message, /s3cret-pw/)
      assert.doesNotMatch(String(err.stack), /s3cret-pw/)
      return true
    })
    assert.ok(Date.now() - started < 2000, 'no hang on a refused connection')
  })

  it('gives up after connectionTimeoutMs on a host that does not answer', async () => {
    const started = Date.now()
    // 192.0.2.0/24 is TEST-NET-1: never routed, so the connect either times out or is refused at once.
    await assert.rejects(openStore('postgresql://rekey@192.0.2.1:5432/rekey', { connectionTimeoutMs: 300 }), { code: 'ERR_STORE_UNAVAILABLE' })
    assert.ok(Date.now() - started < 3000, 'bounded by the connection timeout')
  })
})

describe('postgres store: migrations and recovery', { skip: postgresFactory.skip }, () => {
  let db: TestDatabase
  before(async () => { db = await postgresFactory.create() })
  after(async () => { await db?.destroy() })

  it('migrates once when three instances open a fresh schema at the same time', async () => {
    if (POSTGRES_URL === '') throw new Error('REKEY_REQUIRE_POSTGRES=1 but REKEY_TEST_POSTGRES_URL is not set')
    const schema = freshSchema()
    const stores: Store[] = []
    try {
      const opened = await Promise.allSettled([1, 2, 3].map(() => openStore(POSTGRES_URL, { schema, max: 2 })))
      for (const o of opened) if (o.status === 'fulfilled') stores.push(o.value)
      assert.deepEqual(opened.map((o) => o.status), ['fulfilled', 'fulfilled', 'fulfilled'])
      const { rows } = await adminQuery(`SELECT version FROM ${schema}.schema_migrations ORDER BY version`)
      assert.deepEqual(rows.map((r: { version: number }) => r.version), POSTGRES_MIGRATIONS.map((m) => m.version))
      await stores[0]!.setSetting('shared', 'yes')
      assert.equal(await stores[2]!.getSetting('shared'), 'yes')
    } finally {
      await Promise.allSettled(stores.map((s) => s.close()))
      await adminQuery(`DROP SCHEMA IF EXISTS ${schema} CASCADE`)
    }
  })

  it('refuses a schema migrated by a newer rekey with ERR_CONFIG', async () => {
    const schema = freshSchema()
    try {
      await (await openStore(POSTGRES_URL, { schema })).close()
      await adminQuery(`INSERT INTO ${schema}.schema_migrations (version, name, applied_at) VALUES (999, 'future', 0)`)
      await assert.rejects(openStore(POSTGRES_URL, { schema }), { code: 'ERR_CONFIG' })
    } finally {
      await adminQuery(`DROP SCHEMA IF EXISTS ${schema} CASCADE`)
    }
  })

  it('recovers after its connections are terminated, and listens again', async () => {
    const errors: unknown[] = []
    const store = await db.open({ onError: (err) => errors.push(err) })
    const peer = await db.open()
    const heard: ChangeChannel[] = []
    await store.subscribe((channel) => heard.push(channel))
    await store.ping()
    await Promise.all([store.getSetting('warm'), store.getSetting('warm'), store.transaction(async (tx) => tx.getSetting('warm'))])

    const killed = await adminQuery(
      'SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1 AND pid <> pg_backend_pid()',
      [db.options.applicationName],
    )
    assert.ok(killed.rowCount !== null && killed.rowCount >= 2, 'pool and LISTEN connections were terminated')

    // The pool still holds the dead idle connections: the store's own calls discard them and
    // run again on fresh ones, so the very next call answers (ERR_STORE_UNAVAILABLE would also be
    // acceptable under the contract, a hang or a crash would not).
    assert.equal(await store.getSetting('after-kill'), null)
    await store.setSetting('recovered', 'yes')
    assert.equal(await store.getSetting('recovered'), 'yes')
    await store.ping()

    // The listener reconnects and signals every channel, since it may have missed some.
    await waitFor(() => heard.includes('keys') && heard.includes('revocations') && heard.includes('users'), 3000, 'the resubscribe signal')
    heard.length = 0
    await peer.setSetting('after-reconnect', 'yes')
    await waitFor(() => heard.includes('settings'), 1000, 'a notification after reconnecting')
    assert.ok(errors.length > 0, 'dropped connections were reported to onError instead of crashing the process')
  })

  it('fails a transaction cut mid-way with ERR_STORE_UNAVAILABLE and commits nothing', async () => {
    const store = await db.open({ applicationName: `${db.options.applicationName}-tx` })
    await assert.rejects(store.transaction(async (tx) => {
      await tx.setSetting('cut', 'yes')
      await adminQuery('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1', [`${db.options.applicationName}-tx`])
      await tx.getSetting('cut')
    }), { code: 'ERR_STORE_UNAVAILABLE' })
    assert.equal(await store.getSetting('cut'), null)
  })
})
