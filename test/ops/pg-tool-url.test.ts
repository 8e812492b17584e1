/**
 * What pg_dump is handed for a store URL: the password only through PGPASSWORD (a `password`
 * query parameter, which the node driver reads, too), never on its command line, where `ps`
 * shows it; and every other query parameter (sslmode, options with quotes and spaces,
 * application_name with a plus) as the node driver reads it. A `pg_dump` on PATH records its
 * arguments and PGPASSWORD, then runs the real one against the real PostgreSQL.
 * Skipped visibly without REKEY_TEST_POSTGRES_URL; failing when REKEY_REQUIRE_POSTGRES=1.
 */
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'
import { snapshotPostgres } from '../../src/ops/backup/postgres-snapshot.ts'
import { openStore } from '../../src/store/open.ts'
import { adminQuery, freshSchema, POSTGRES_URL, REQUIRE_POSTGRES } from '../store/support/stores.ts'

const skip = POSTGRES_URL === '' && !REQUIRE_POSTGRES ? 'REKEY_TEST_POSTGRES_URL is not set; skipped' : false
const PASSWORD = 'q-Pass+word &=%"x'

/** libpq's reading of a URI query: split on & and =, then percent-decode (a + stays a +). */
function libpqQuery(url: string): Record<string, string> {
  const query = new URL(url).search.slice(1)
  return Object.fromEntries(query.split('&').filter((p) => p !== '').map((p) => {
    const [k, v = ''] = p.split('=')
    return [decodeURIComponent(k as string), decodeURIComponent(v)]
  }))
}

describe('pg_dump gets the store URL as the node driver reads it, without its password', { skip }, () => {
  const schema = freshSchema()
  const dir = mkdtempSync(path.join(tmpdir(), 'rekey-pgtool-'))
  const real = skip === false ? execFileSync('sh', ['-c', 'command -v pg_dump'], { encoding: 'utf8' }).trim() : ''
  let savedPath: string | undefined
  before(async () => {
    const store = await openStore(POSTGRES_URL, { schema })
    await store.close()
    writeFileSync(path.join(dir, 'pg_dump'), `#!/bin/sh\nprintf '%s\\n' "$@" > "${dir}/args"\nprintf '%s' "$PGPASSWORD" > "${dir}/pgpassword"\nexec "${real}" "$@"\n`)
    chmodSync(path.join(dir, 'pg_dump'), 0o700)
    savedPath = process.env.PATH
    process.env.PATH = `${dir}:${savedPath ?? ''}`
  })
  after(async () => {
    process.env.PATH = savedPath
    rmSync(dir, { recursive: true, force: true })
    await adminQuery(`DROP SCHEMA IF EXISTS ${schema} CASCADE`)
  })

  test('a password in the query reaches pg_dump as PGPASSWORD only; sslmode, options and application_name survive', async () => {
    const url = new URL(POSTGRES_URL)
    url.password = ''
    const query = { sslmode: 'disable', options: `-c search_path="${schema}" -c lock_timeout=5s`, application_name: 'rekey+backup test', password: PASSWORD }
    for (const [k, v] of Object.entries(query)) url.searchParams.set(k, v)
    const out = path.join(dir, 'store.dump')
    const facts = await snapshotPostgres(url.toString(), out)
    assert.equal(facts.schema, schema)
    assert.ok(existsSync(out))
    const args = readFileSync(path.join(dir, 'args'), 'utf8')
    assert.ok(!args.includes('q-Pass'), "the password is on pg_dump's command line")
    assert.equal(readFileSync(path.join(dir, 'pgpassword'), 'utf8'), PASSWORD)
    const dbname = args.split('\n').find((a) => a.startsWith('--dbname='))?.slice('--dbname='.length) ?? ''
    const { password: _dropped, ...rest } = query
    assert.deepEqual(libpqQuery(dbname), rest)
  })
})
