import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import { maskLocation } from '../../src/store/errors.ts'
import { openStore } from '../../src/store/open.ts'
import { POSTGRES_URL, postgresFactory } from './support/stores.ts'

describe('openStore', () => {
  const dir = mkdtempSync(join(tmpdir(), 'rekey-open-'))
  after(() => rmSync(dir, { recursive: true, force: true }))

  it('opens a SQLite file for anything that is not a PostgreSQL URL', async () => {
    const store = await openStore(join(dir, 'plain.db'))
    try {
      assert.equal(store.dialect, 'sqlite')
      assert.equal(store.location, join(dir, 'plain.db'))
    } finally {
      await store.close()
    }
  })

  it('opens PostgreSQL for postgres:// and postgresql:// URLs', { skip: postgresFactory.skip }, async () => {
    for (const url of [POSTGRES_URL, POSTGRES_URL.replace(/^postgres:/, 'postgresql:')]) {
      const store = await openStore(url, { max: 1 })
      try {
        assert.equal(store.dialect, 'postgres')
        await store.ping()
      } finally {
        await store.close()
      }
    }
  })

  it('reports every bad option at once with a TypeError', async () => {
    await assert.rejects(openStore(join(dir, 'opts.db'), { busyTimeoutMs: -1, pollIntervalMs: 1.5 }), (err: Error) => {
      assert.ok(err instanceof TypeError)
      assert.match(err.message, /busyTimeoutMs must be a positive integer/)
      assert.match(err.message, /pollIntervalMs must be a positive integer/)
      return true
    })
    await assert.rejects(openStore('postgres://u@127.0.0.1:1/db', { max: 0 }), /max must be a positive integer/)
    await assert.rejects(openStore('postgres://u@127.0.0.1:1/db', { schema: 'bad; DROP TABLE users' }), TypeError)
    await assert.rejects(openStore(''), TypeError)
  })
})

describe('maskLocation', () => {
  it('masks the password of PostgreSQL URLs and leaves the rest readable', () => {
    assert.equal(maskLocation('postgres://rekey:hunter2@db.internal:5432/auth'), 'postgres://rekey:***@db.internal:5432/auth')
    assert.equal(maskLocation('postgresql://rekey:p%40ss@db/auth?sslmode=require'), 'postgresql://rekey:***@db/auth?sslmode=require')
    assert.equal(maskLocation('postgres://rekey@db/auth?password=hunter2'), 'postgres://rekey@db/auth?password=***')
    assert.equal(maskLocation('postgres://rekey@db/auth'), 'postgres://rekey@db/auth')
  })

  it('masks even a URL that does not parse', () => {
    const masked = maskLocation('postgres://rekey:hun ter2@[bad/auth')
    assert.doesNotMatch(masked, /hun ter2/)
    assert.match(masked, /\*\*\*/)
  })

  it('leaves SQLite paths alone', () => {
    assert.equal(maskLocation('./.rekey/rekey.db'), './.rekey/rekey.db')
  })
})
