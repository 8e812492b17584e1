/**
 * Backup, restore drill and restore against the real PostgreSQL: a fresh schema per run,
 * dropped afterwards. Skipped visibly without REKEY_TEST_POSTGRES_URL; failing when
 * REKEY_REQUIRE_POSTGRES=1 and the server is unreachable.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'
import pg from 'pg'
import { POSTGRES_SCHEMA_VERSION } from '../../src/store/postgres/migrations.ts'
import { createBackup } from '../../src/ops/backup/backup.ts'
import { openStore } from '../../src/store/open.ts'
import type { Store } from '../../src/store/store.ts'
import { FAST, fill, PASSPHRASE, run, tempDir } from './backup-fixtures.ts'

const BASE = process.env.REKEY_TEST_POSTGRES_URL ?? ''
const REQUIRE = process.env.REKEY_REQUIRE_POSTGRES === '1'
const skip = BASE === '' && !REQUIRE ? 'REKEY_TEST_POSTGRES_URL is not set; PostgreSQL backup tests skipped' : false

/** The test URL with a (fake, trust-ignored) password and the schema in search_path. */
function urlFor(schema: string): string {
  const url = new URL(BASE)
  if (url.password === '') url.password = 'not-a-real-password-7f3a'
  // %20, not +: libpq does not read + as a space.
  url.search = `?options=-c%20search_path%3D${schema}`
  return url.toString()
}

async function admin(sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: BASE, connectionTimeoutMillis: 3000 })
  await client.connect()
  try {
    await client.query(sql)
  } finally {
    await client.end()
  }
}

describe('rekey backup (PostgreSQL)', { skip }, () => {
  const schema = `rekey_test_${randomBytes(6).toString('hex')}`
  const url = BASE === '' ? '' : urlFor(schema)
  const password = BASE === '' ? '' : decodeURIComponent(new URL(url).password)
  let store: Store

  before(async () => {
    if (BASE === '') throw new Error('REKEY_REQUIRE_POSTGRES=1 but REKEY_TEST_POSTGRES_URL is not set')
    store = await openStore(url, { max: 2, schema })
    await fill(store, 25)
  })
  after(async () => {
    await store?.close()
    if (BASE !== '') await admin(`DROP SCHEMA IF EXISTS ${schema} CASCADE`)
  })

  test('pg_dump backup, the drill in a temporary database, restore --force; the password is never printed', async (t) => {
    const dir = tempDir(t)
    const { file, manifest } = await createBackup(url, dir, FAST)
    assert.equal(manifest.dialect, 'postgres')
    assert.equal(manifest.pgSchema, schema)
    assert.equal(manifest.rowCounts.users, 25)
    assert.ok(!manifest.source.includes(password))
    const env = { REKEY_BACKUP_PASSPHRASE: PASSPHRASE }
    const verified = await run(['--store', url, 'backup', 'verify', file], env)
    assert.equal(verified.code, 0, verified.stderr)
    assert.match(verified.stdout, new RegExp(`postgres, schema version ${POSTGRES_SCHEMA_VERSION}\\b`))
    const refused = await run(['--store', url, 'restore', file], env)
    assert.equal(refused.code, 1)
    assert.match(refused.stderr, /ERR_UNSAFE/)
    await fill(store, 2)
    const restored = await run(['--store', url, 'restore', file, '--force'], env)
    assert.equal(restored.code, 0, restored.stderr)
    assert.equal(await store.countUsers(), 25)
    const made = await run(['--store', url, 'backup', '--out', path.join(dir, 'cli')], env)
    assert.equal(made.code, 0, made.stderr)
    for (const r of [verified, refused, restored, made]) assert.ok(!`${r.stdout}${r.stderr}`.includes(password))
  })

  test('without pg_dump on PATH: exit 2, naming the tool', async (t) => {
    const dir = tempDir(t)
    const saved = process.env.PATH
    process.env.PATH = dir
    try {
      const result = await run(['--store', url, 'backup', '--out', dir], { REKEY_BACKUP_PASSPHRASE: PASSPHRASE })
      assert.equal(result.code, 2)
      assert.match(result.stderr, /pg_dump was not found on PATH/)
      assert.ok(!result.stderr.includes(password))
    } finally {
      process.env.PATH = saved
    }
  })
})
