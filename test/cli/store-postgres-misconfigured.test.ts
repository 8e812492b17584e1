/**
 * A PostgreSQL store URL or role that cannot hold a store is a configuration error (exit 2,
 * ERR_CONFIG, a message that says what to change), and nothing is created: a search_path that
 * leads to a system schema or to none, an `options=-c` parameter the server refuses, a role
 * without CREATE on the schema. Real CLI processes, a real PostgreSQL database of the test's own.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { describe, test } from 'node:test'
import pg from 'pg'
import { openStore } from '../../src/store/open.ts'
import { POSTGRES_URL, REQUIRE_POSTGRES, adminQuery } from '../store/support/stores.ts'
import { runBin, tempDir } from './helpers.ts'

const skip = POSTGRES_URL === '' && !REQUIRE_POSTGRES ? 'REKEY_TEST_POSTGRES_URL is not set' : false

/** A database of the test's own, dropped afterwards, and its URL with a password to look for in output. */
async function ownDatabase(t: { after: (fn: () => Promise<void>) => void }): Promise<URL> {
  const database = `rekey_pgurl_${randomBytes(6).toString('hex')}`
  await adminQuery(`CREATE DATABASE ${database}`)
  t.after(async () => { await adminQuery(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`) })
  const url = new URL(POSTGRES_URL)
  url.pathname = `/${database}`
  return url
}

/** A login role of the test's own, with no privilege beyond PUBLIC's, dropped afterwards. */
async function ownRole(t: { after: (fn: () => Promise<void>) => void }): Promise<string> {
  const role = `rekey_pgurl_${randomBytes(6).toString('hex')}`
  await adminQuery(`CREATE ROLE ${role} LOGIN`)
  t.after(async () => { await adminQuery(`DROP ROLE IF EXISTS ${role}`) })
  return role
}

/** How many tables named like rekey's exist in the database, in any schema. */
async function rekeyTables(url: URL): Promise<number> {
  const client = new pg.Client({ connectionString: url.href })
  await client.connect()
  try {
    const { rows } = await client.query("SELECT count(*) AS n FROM pg_class WHERE relname IN ('schema_migrations', 'usage_counters', 'users') AND relkind = 'r'")
    return Number(rows[0].n)
  } finally {
    await client.end()
  }
}

function assertConfigError(r: { code: number | null, stderr: string }, pattern: RegExp, what: string): void {
  assert.equal(r.code, 2, `${what}: ${r.stderr}`)
  assert.match(r.stderr, /^rekey: ERR_CONFIG: /, what)
  assert.match(r.stderr, pattern, what)
  assert.doesNotMatch(r.stderr, /ERR_INTERNAL|hunter2secret|\n\s+at /, `${what}: no internal error, password or stack trace`)
}

describe('a misconfigured PostgreSQL store is ERR_CONFIG, and nothing is created (real CLI, real PostgreSQL)', () => {
  test('a search_path that leads to a system schema, or to none, is refused naming it', { skip }, async (t) => {
    const url = await ownDatabase(t)
    url.password = 'hunter2secret'
    const dir = tempDir(t)
    const env = { REKEY_MASTER_KEY: randomBytes(32).toString('base64') }
    for (const [path, pattern] of [
      ['pg_catalog', /schema would be pg_catalog, a system schema of PostgreSQL: .*search_path%3DNAME/],
      ['information_schema', /schema would be information_schema, a system schema/],
      ['pg_temp', /schema would be pg_temp_\d+ \(its search_path is pg_temp\), a system schema/],
      ['pg_toast', /schema would be pg_toast, a system schema/],
      ['', /^rekey: ERR_CONFIG: the PostgreSQL store's search_path is empty: name a schema with \?options=/],
      ['nope_a,nope_b', /none of the schemas of the PostgreSQL store's search_path \(nope_a, nope_b\) exists: create one/],
    ] as const) {
      const r = await runBin(['--store', `${url.href}?options=-c%20search_path%3D${path}`, 'record', 'SMTP_PASSWORD'], { cwd: dir, env })
      assertConfigError(r, pattern, `search_path=${path}`)
    }
    assert.equal(await rekeyTables(url), 0, 'no rekey table was created anywhere, system schemas included')
  })

  test('a parameter the server refuses at connect is named, without its value', { skip }, async (t) => {
    const url = await ownDatabase(t)
    const dir = tempDir(t)
    const env = { REKEY_MASTER_KEY: randomBytes(32).toString('base64') }
    for (const [option, pattern] of [
      ['bogus_guc%3D1', /sets a parameter the server refuses at connect: unrecognized configuration parameter "bogus_guc"; fix or remove "-c bogus_guc=\.\.\."/],
      ['statement_timeout%3Dhunter2secret', /invalid value for parameter "statement_timeout"/],
    ] as const) {
      const r = await runBin(['status'], { cwd: dir, env: { ...env, REKEY_STORE: `${url.href}?options=-c%20${option}` } })
      assertConfigError(r, pattern, option)
    }
    assert.equal(await rekeyTables(url), 0)
  })

  test('a role without CREATE on the schema is told which privilege it lacks, on which schema', { skip }, async (t) => {
    const url = await ownDatabase(t)
    const role = await ownRole(t)
    // PostgreSQL 15 grants no CREATE on public to PUBLIC: the role may connect and read, not create.
    const admin = new pg.Client({ connectionString: url.href })
    await admin.connect()
    await admin.query(`REVOKE CREATE ON SCHEMA public FROM PUBLIC`)
    await admin.end()
    url.username = role
    const dir = tempDir(t)
    const r = await runBin(['--store', url.href, 'record', 'SMTP_PASSWORD'], { cwd: dir, env: { REKEY_MASTER_KEY: randomBytes(32).toString('base64') } })
    assertConfigError(r, new RegExp(`the PostgreSQL role ${role} may not create rekey's tables in schema public: it lacks the CREATE privilege on it \\(GRANT CREATE ON SCHEMA public TO ${role}\\)`), 'no CREATE')
    url.username = new URL(POSTGRES_URL).username
    assert.equal(await rekeyTables(url), 0)
  })

  test('openStore({ schema }): a system schema, or a role that may not create the schema, is ERR_CONFIG', { skip }, async (t) => {
    const url = await ownDatabase(t)
    const role = await ownRole(t)
    for (const schema of ['pg_catalog', 'pg_rekey', 'information_schema']) {
      await assert.rejects(openStore(url.href, { schema }), (err: Error & { code?: string }) => {
        assert.equal(err.code, 'ERR_CONFIG', err.message)
        assert.match(err.message, new RegExp(`schema ${schema} is a system schema of PostgreSQL`))
        return true
      })
    }
    const limited = new URL(url.href)
    limited.username = role
    await assert.rejects(openStore(limited.href, { schema: 'rekey_own' }), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'ERR_CONFIG', err.message)
      assert.match(err.message, new RegExp(`role ${role} may not create the store's schema: it lacks the CREATE privilege on database ${url.pathname.slice(1)}`))
      return true
    })
    assert.equal(await rekeyTables(url), 0)
  })
})
