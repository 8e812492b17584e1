/**
 * Backup, restore drill and restore against the real PostgreSQL, for a store in the default
 * `public` schema (the compose example's setup) and in a custom schema, each restored into an
 * empty database created for the test (never the shared database's public schema). The
 * oracle is PostgreSQL's own tools: `pg_dump` of the source and of the restored database,
 * turned back into SQL by `pg_restore`, must hold the same rows.
 * Skipped visibly without REKEY_TEST_POSTGRES_URL; failing when REKEY_REQUIRE_POSTGRES=1.
 */
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'
import pg from 'pg'
import { POSTGRES_SCHEMA_VERSION } from '../../src/store/postgres/migrations.ts'
import { manifestMac } from '../../src/ops/backup/authenticity.ts'
import { createBackup } from '../../src/ops/backup/backup.ts'
import { foreignPostgresEntries } from '../../src/ops/backup/own-schema.ts'
import { dumpToc } from '../../src/ops/backup/postgres-snapshot.ts'
import { openStore } from '../../src/store/open.ts'
import type { Store } from '../../src/store/store.ts'
import { queryOnce } from '../store/support/stores.ts'
import { FAST, fill, MASTER_ENV, MASTER_KEY, PASSPHRASE, run, sealTgz, tempDir } from './backup-fixtures.ts'

const BASE = process.env.REKEY_TEST_POSTGRES_URL ?? ''
const REQUIRE = process.env.REKEY_REQUIRE_POSTGRES === '1'
const skip = BASE === '' && !REQUIRE ? 'REKEY_TEST_POSTGRES_URL is not set; PostgreSQL backup tests skipped' : false
const env = { REKEY_BACKUP_PASSPHRASE: PASSPHRASE, ...MASTER_ENV }

/** `url` on database `db`, with a (fake, trust-ignored) password and, if given, the schema in search_path. */
function urlFor(db: string, schema?: string): string {
  const url = new URL(BASE)
  url.pathname = `/${db}`
  if (url.password === '') url.password = 'not-a-real-password-7f3a'
  // URLSearchParams writes the space as `+`, which libpq does not read as a space: rekey hands
  // pg_dump and pg_restore the query as the node driver reads it (%20), so both forms work.
  if (schema !== undefined) url.searchParams.set('options', `-c search_path=${schema}`)
  return url.toString()
}

const admin = async (sql: string, url = BASE): Promise<pg.QueryResult> => await queryOnce(url, sql)

const created: string[] = []
/** A new, empty database for this run; dropped at the end. */
async function freshDatabase(): Promise<string> {
  const name = `rekey_bk_${randomBytes(5).toString('hex')}`
  await admin(`CREATE DATABASE ${name}`)
  created.push(name)
  return name
}

/**
 * The rows of `schema` in the database of `url`, as pg_dump and pg_restore write them (the
 * oracle), but the audit log's: a restore appends its own `restore` row (checked apart).
 */
function dataOf(url: string, schema: string): string {
  const plain = new URL(url)
  plain.password = ''
  plain.search = ''
  const dump = execFileSync('pg_dump', ['--format=custom', '--data-only', `--schema=${schema}`, `--exclude-table-data=${schema}.audit_events`, `--dbname=${plain.toString()}`])
  const sql = execFileSync('pg_restore', ['--data-only', '--file=-'], { input: dump, encoding: 'utf8' })
  // Only the COPY blocks: headers carry versions and settings.
  return sql.split('\n').filter((l) => !l.startsWith('--') && !l.startsWith('\\restrict') && !l.startsWith('\\unrestrict') && !l.startsWith('SET ') && !l.startsWith('SELECT pg_catalog')).join('\n').trim()
}

describe('rekey backup (PostgreSQL)', { skip }, () => {
  before(() => {
    if (BASE === '') throw new Error('REKEY_REQUIRE_POSTGRES=1 but REKEY_TEST_POSTGRES_URL is not set')
  })
  after(async () => {
    for (const name of created) await admin(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).catch(() => {})
  })

  for (const layout of ['public', 'custom'] as const) {
    test(`a store in the ${layout} schema: backup, verify, restore into an empty database (pg_dump/pg_restore agree), restore --force over changes`, async (t) => {
      const dir = tempDir(t)
      const schema = layout === 'public' ? 'public' : `rekey_s_${randomBytes(4).toString('hex')}`
      const source = urlFor(await freshDatabase(), layout === 'public' ? undefined : schema)
      if (layout === 'custom') await admin(`CREATE SCHEMA ${schema}`, source)
      let store: Store | undefined = await openStore(source, { max: 2 })
      t.after(() => store?.close())
      await fill(store, 25)
      const password = decodeURIComponent(new URL(source).password)

      const { file, manifest } = await createBackup(source, dir, FAST, MASTER_KEY)
      assert.equal(manifest.dialect, 'postgres')
      assert.equal(manifest.pgSchema, schema)
      assert.equal(manifest.rowCounts.users, 25)
      assert.ok(!manifest.source.includes(password))
      const verified = await run(['--store', source, 'backup', 'verify', file], env)
      assert.equal(verified.code, 0, verified.stderr)
      assert.match(verified.stdout, new RegExp(`postgres, schema version ${POSTGRES_SCHEMA_VERSION}\\b`))

      // An empty database: public exists there already (the bug), a custom schema does not.
      const target = urlFor(await freshDatabase(), layout === 'public' ? undefined : schema)
      const restored = await run(['--store', target, 'restore', file], env)
      assert.equal(restored.code, 0, restored.stderr)
      assert.match(restored.stdout, /restored .* rows in \d+ tables/)
      assert.equal(dataOf(target, schema), dataOf(source, schema), 'the restored rows are the backed-up rows')
      assert.match(dataOf(target, schema), /COPY \S+\.users /)
      const reopened = await openStore(target, { max: 1 })
      assert.equal(await reopened.countUsers(), 25)
      assert.deepEqual((await reopened.listAudit()).map((row) => row.method), ['restore'], 'the restore is the restored store\'s one audit row')
      await reopened.close()

      // Over a store with data: refused without --force, then replaced.
      const refused = await run(['--store', source, 'restore', file], env)
      assert.equal(refused.code, 1)
      assert.match(refused.stderr, /ERR_UNSAFE: the store .* holds data/)
      await fill(store, 2)
      const forced = await run(['--store', source, 'restore', file, '--force'], env)
      assert.equal(forced.code, 0, forced.stderr)
      assert.equal(await store.countUsers(), 25)
      assert.equal(dataOf(source, schema), dataOf(target, schema))

      // A running instance (its heartbeat) blocks the restore, --force or not.
      await store.heartbeat({ instanceId: 'i-live', hostname: 'web-1', pid: 4242, keysetVersion: 0, startedAt: Date.now(), lastSeen: Date.now() })
      const live = await run(['--store', source, 'restore', file, '--force'], env)
      assert.equal(live.code, 1)
      assert.match(live.stderr, /ERR_UNSAFE: restore refused: 1 instance\(s\) are running on .*: i-live \(web-1 pid 4242, last seen \d+ s ago\)/)
      // Into a URL that resolves to another schema: refused, naming both.
      const other = await run(['--store', `${target.split('?')[0]}?options=-c%20search_path%3Delsewhere`, 'restore', file], env)
      assert.equal(other.code, 2)
      assert.match(other.stderr, new RegExp(`backup is of schema ${schema} and .* uses schema elsewhere`))

      const made = await run(['--store', source, 'backup', '--out', path.join(dir, 'cli')], env)
      assert.equal(made.code, 0, made.stderr)
      for (const r of [verified, restored, refused, forced, live, other, made]) assert.ok(!`${r.stdout}${r.stderr}`.includes(password))
      await store.close()
      store = undefined
    })
  }

  test('a trigger and a function planted in the store: the dump\'s table of contents names them, backup refuses, and restore refuses them in an authentic archive', async (t) => {
    const dir = tempDir(t)
    const source = urlFor(await freshDatabase())
    const store = await openStore(source, { max: 1 })
    await fill(store, 1)
    await store.close()
    await admin(`CREATE FUNCTION promote() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.role := 'admin'; RETURN NEW; END $$;
      CREATE TRIGGER promote_everyone BEFORE INSERT ON users FOR EACH ROW EXECUTE FUNCTION promote();
      CREATE VIEW admins AS SELECT email FROM users`, source)
    const plain = new URL(source)
    plain.password = ''
    const dump = path.join(dir, 'planted.pgdump')
    execFileSync('pg_dump', ['--format=custom', '--schema=public', '--no-owner', '--no-acl', `--file=${dump}`, `--dbname=${plain.toString()}`])
    const foreign = foreignPostgresEntries(await dumpToc(dump), 'public')
    assert.deepEqual(foreign.sort(), ['function public.promote()', 'trigger public.users promote_everyone', 'view public.admins'])
    const made = await run(['--store', source, 'backup', '--out', path.join(dir, 'out')], env)
    assert.equal(made.code, 1)
    assert.match(made.stderr, /ERR_BACKUP_INVALID: the dump holds objects that are not rekey's own/)
    assert.match(made.stderr, /trigger public\.users promote_everyone/)

    // The same dump in an authentic archive (an insider holding the master key): restore refuses it before restoring anything.
    const work = path.join(dir, 'work')
    mkdirSync(work)
    const bytes = readFileSync(dump)
    writeFileSync(path.join(work, 'store.pgdump'), bytes)
    const manifest = Buffer.from(JSON.stringify({
      format: 'rekey-backup/2', rekeyVersion: '0.1.0', dialect: 'postgres', schemaVersion: 1, pgSchema: 'public', createdAt: new Date().toISOString(),
      masterKeyId: 'insider', source: 'postgres://db/rekey', parts: [{ name: 'store.pgdump', bytes: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex') }], rowCounts: { users: 1 },
    }))
    writeFileSync(path.join(work, 'manifest.json'), manifest)
    writeFileSync(path.join(work, 'manifest.mac'), manifestMac(MASTER_KEY, manifest))
    const archive = path.join(dir, 'insider.tgz.age')
    await sealTgz(work, ['manifest.json', 'manifest.mac', 'store.pgdump'], archive)
    const target = urlFor(await freshDatabase())
    const restored = await run(['--store', target, 'restore', archive], env)
    assert.equal(restored.code, 1, restored.stderr)
    assert.match(restored.stderr, /not rekey's own.*trigger public\.users promote_everyone/)
    const tables = await admin("SELECT count(*)::int AS n FROM information_schema.tables WHERE table_schema = 'public'", target)
    assert.equal(tables.rows[0]?.n, 0, 'nothing was restored')
  })

  test('the nightly workflow\'s setup: a role with read access only backs up; its drill needs CREATEDB (exit 2, saying so), and runs against another server\'s URL', async (t) => {
    const dir = tempDir(t)
    const db = await freshDatabase()
    const store = await openStore(urlFor(db), { max: 1 })
    await fill(store, 3)
    await store.close()
    const role = `rekey_ro_${randomBytes(4).toString('hex')}`
    await admin(`CREATE ROLE ${role} LOGIN NOCREATEDB`)
    t.after(async () => { await admin(`DROP OWNED BY ${role}`, urlFor(db)).catch(() => {}); await admin(`DROP ROLE IF EXISTS ${role}`).catch(() => {}) })
    await admin(`GRANT SELECT ON ALL TABLES IN SCHEMA public TO ${role}; GRANT SELECT ON ALL SEQUENCES IN SCHEMA public TO ${role}`, urlFor(db))
    const readOnly = new URL(urlFor(db))
    readOnly.username = role

    const made = await run(['--store', readOnly.toString(), 'backup', '--out', path.join(dir, 'out')], env)
    assert.equal(made.code, 0, made.stderr)
    const file = path.join(dir, 'out', readdirSync(path.join(dir, 'out'))[0] as string)
    const drill = await run(['--store', readOnly.toString(), 'backup', 'verify', file], env)
    assert.equal(drill.code, 2, drill.stderr)
    assert.match(drill.stderr, /^rekey: ERR_CONFIG: backup verify restores into a temporary database and could not create one .*grant CREATEDB or verify against another server with --store/)
    // REKEY_DRILL_STORE of the workflow: a URL where the role may create databases.
    const elsewhere = await run(['--store', BASE, 'backup', 'verify', file], env)
    assert.equal(elsewhere.code, 0, elsewhere.stderr)
  })

  test('without pg_dump on PATH: exit 2, naming the tool', async (t) => {
    const dir = tempDir(t)
    const source = urlFor(await freshDatabase())
    const store = await openStore(source, { max: 1 })
    await store.close()
    const saved = process.env.PATH
    process.env.PATH = dir
    try {
      const result = await run(['--store', source, 'backup', '--out', dir], env)
      assert.equal(result.code, 2)
      assert.match(result.stderr, /pg_dump was not found on PATH/)
      assert.ok(!result.stderr.includes('not-a-real-password'))
    } finally {
      process.env.PATH = saved
    }
  })
})
