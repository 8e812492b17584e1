/**
 * A store location means one store (issue 11, item 2), through the real CLI:
 * - a location that is neither a postgres:// URL nor a file path is refused with a
 *   did-you-mean, and no directory is created for it;
 * - `rekey --env-file F serve` uses the store beside F.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { describe, test } from 'node:test'
import pg from 'pg'
import { POSTGRES_URL, REQUIRE_POSTGRES, adminQuery } from '../store/support/stores.ts'
import { runBin, runCli, serveOnce, tempDir } from './helpers.ts'

describe('a store location means one store', () => {
  test('postgress:// and mysql:// are refused with a did-you-mean; no directory is created; the password is not echoed', async (t) => {
    const dir = tempDir(t)
    const typo = 'postgress://postgres:hunter2secret@127.0.0.1/x'
    const served = await serveOnce(['--store', typo, 'serve', '--port', '0'], { cwd: dir })
    assert.equal(served.listening, null)
    assert.equal(served.code, 2, served.stderr)
    assert.match(served.stderr, /ERR_CONFIG/)
    assert.match(served.stderr, /did you mean postgres:\/\//)
    assert.doesNotMatch(served.stderr + served.stdout, /hunter2secret/)

    const mysql = await runCli(['--store', 'mysql://root@db/rekey', 'record', 'SMTP_PASSWORD'], {})
    assert.equal(mysql.code, 2, mysql.stderr)
    assert.match(mysql.stderr, /^rekey: ERR_CONFIG: [\s\S]*"mysql:\/\/" is not supported[\s\S]*did you mean postgres:\/\//)

    for (const [argv, env] of [
      [['status'], { REKEY_STORE: 'postgress://postgres@127.0.0.1/x' }],
      [['audit'], { REKEY_STORE: 'postgresql:/127.0.0.1/x' }],
      [['--json', 'due'], { REKEY_STORE: 'pg://127.0.0.1/x' }],
      [['backup', '--recipient', 'age1x'], { REKEY_STORE: 'sqlite:///var/lib/rekey.db' }],
    ] as const) {
      const r = await runCli([...argv], env)
      assert.equal(r.code, 2, `${argv.join(' ')}: ${r.stderr}`)
      assert.match(r.stderr, /ERR_CONFIG[\s\S]*did you mean/, argv.join(' '))
    }

    // Spaces around a mistyped URL, and a mistyped URL as the env file's own REKEY_STORE, which
    // used to be made relative to the file first: both were directories, with a master.key.
    const spaced = await runBin(['--store', ' postgress://postgres@127.0.0.1/x', 'record', 'SMTP_PASSWORD'], { cwd: dir })
    assert.equal(spaced.code, 2, spaced.stderr)
    assert.match(spaced.stderr, /^rekey: ERR_CONFIG: [\s\S]*did you mean postgres:\/\//)
    const envDir = tempDir(t)
    const envFile = path.join(envDir, 'app.env')
    const envText = `JWT_SECRET=${randomBytes(32).toString('base64url')}\nREKEY_STORE=postgress://postgres@127.0.0.1/x\n`
    writeFileSync(envFile, envText, { mode: 0o600 })
    for (const argv of [['rotate'], ['serve', '--port', '0'], ['record', 'SMTP_PASSWORD']]) {
      const r = argv[0] === 'serve'
        ? await serveOnce(['--env-file', envFile, ...argv], { cwd: envDir })
        : await runBin(['--env-file', envFile, ...argv], { cwd: envDir })
      assert.equal(r.code, 2, `${argv[0]}: ${r.stderr}`)
      assert.match(r.stderr, /ERR_CONFIG: [\s\S]*did you mean postgres:\/\//, argv[0])
      assert.ok(r.stderr.includes(`REKEY_STORE of ${envFile}`), `${argv[0]} names where the location came from: ${r.stderr}`)
    }
    assert.equal(readFileSync(envFile, 'utf8'), envText, 'the env file is unchanged')
    assert.deepEqual(readdirSync(envDir), ['app.env'], 'nothing was created beside the env file')

    writeFileSync(path.join(dir, 'rekey.config.json'), JSON.stringify({ store: 'mysql://root@db/rekey' }))
    const fromFile = await runBin(['due'], { cwd: dir })
    assert.equal(fromFile.code, 2, fromFile.stderr)
    assert.match(fromFile.stderr, /rekey\.config\.json "store"/)

    assert.deepEqual(readdirSync(dir).sort(), ['rekey.config.json'], 'nothing was created in the working directory')
  })

  test('rekey --env-file F serve uses the store beside F, as every env-file command does', async (t) => {
    const dir = tempDir(t)
    const conf = path.join(dir, 'conf')
    mkdirSync(conf)
    const file = path.join(conf, 'rekey.env')
    writeFileSync(file, `JWT_SECRET=${randomBytes(32).toString('base64url')}\nJWT_REFRESH_SECRET=${randomBytes(32).toString('base64url')}\n`, { mode: 0o600 })
    const served = await serveOnce(['--env-file', file, 'serve', '--port', '0'], { cwd: dir, env: { REKEY_SCHEDULER: 'off' } })
    assert.ok(served.listening !== null, served.stderr + served.stdout)
    assert.equal(served.listening.store, path.join(conf, '.rekey', 'rekey.db'))
    assert.equal(existsSync(path.join(dir, '.rekey')), false, 'nothing in ./.rekey')
    const rotated = await runCli(['--env-file', file, '--json', 'rotate'], {})
    assert.equal(rotated.code, 0, rotated.stderr)
    assert.equal((JSON.parse(rotated.stdout) as { audit: { store: string } }).audit.store, path.join(conf, '.rekey', 'rekey.db'), 'the same store as serve')
  })
})

describe('a PostgreSQL store URL holds only parameters that reach the connection (real CLI, real PostgreSQL)', () => {
  const skip = POSTGRES_URL === '' && !REQUIRE_POSTGRES ? 'REKEY_TEST_POSTGRES_URL is not set' : false

  test('unknown parameters (?search_path=, ?schema=, a typo) are refused, naming them; a schema named through options must exist', { skip }, async (t) => {
    // A database of our own: before the fix these URLs migrated into its public schema.
    const database = `rekey_ireview_${randomBytes(6).toString('hex')}`
    await adminQuery(`CREATE DATABASE ${database}`)
    t.after(async () => { await adminQuery(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`) })
    const base = new URL(POSTGRES_URL)
    base.pathname = `/${database}`
    base.password = 'hunter2secret'
    const dir = tempDir(t)
    const master = { REKEY_MASTER_KEY: randomBytes(32).toString('base64') }
    const tables = async (): Promise<number> => {
      const client = new pg.Client({ connectionString: base.href })
      await client.connect()
      try {
        return Number((await client.query("SELECT count(*) AS n FROM information_schema.tables WHERE table_schema NOT IN ('pg_catalog', 'information_schema')")).rows[0].n)
      } finally {
        await client.end()
      }
    }

    for (const [query, named, hint] of [
      ['?search_path=rekey', '"search_path"', true],
      ['?schema=rekey', '"schema"', true],
      ['?sslmod=disable&application_name=x', '"sslmod"', false],
    ] as const) {
      for (const [argv, env] of [
        [['--store', `${base.href}${query}`, 'record', 'SMTP_PASSWORD'], master],
        [['status'], { ...master, REKEY_STORE: `${base.href}${query}` }],
      ] as const) {
        const r = await runBin([...argv], { cwd: dir, env })
        assert.equal(r.code, 2, `${query}: ${r.stderr}`)
        assert.match(r.stderr, /^rekey: ERR_CONFIG: /, query)
        assert.ok(r.stderr.includes(named), `${query} names the parameter: ${r.stderr}`)
        assert.match(r.stderr, /the supported ones are host, port, .*options/, query)
        if (hint) assert.match(r.stderr, /options=-c%20search_path%3DNAME/, query)
        assert.doesNotMatch(r.stderr, /hunter2secret|\n\s+at /, 'no password, no stack trace')
      }
    }
    assert.equal(await tables(), 0, 'nothing was created in the database')

    const missing = `rekey_missing_${randomBytes(4).toString('hex')}`
    const refused = await runBin(['--store', `${base.href}?options=-c%20search_path%3D${missing}`, 'record', 'SMTP_PASSWORD'], { cwd: dir, env: master })
    assert.equal(refused.code, 2, refused.stderr)
    assert.match(refused.stderr, new RegExp(`^rekey: ERR_CONFIG: .*schema ${missing} does not exist: create it`))
    assert.doesNotMatch(refused.stderr, /ERR_INTERNAL|hunter2secret/)

    // The spelling the docs use, with parameters pg honours beside it, works.
    const schema = `rekey_own_${randomBytes(4).toString('hex')}`
    const client = new pg.Client({ connectionString: base.href })
    await client.connect()
    await client.query(`CREATE SCHEMA ${schema}`)
    await client.end()
    const ok = await runBin(['--store', `${base.href}?options=-c%20search_path%3D${schema}&application_name=rekey-ireview&sslmode=disable`, 'record', 'SMTP_PASSWORD'], { cwd: dir, env: master })
    assert.equal(ok.code, 0, ok.stderr)
    const check = new pg.Client({ connectionString: base.href })
    await check.connect()
    try {
      const rows = (await check.query('SELECT count(*) AS n FROM information_schema.tables WHERE table_schema = $1', [schema])).rows
      assert.ok(Number(rows[0].n) > 0, 'the tables are in the schema named through options')
    } finally {
      await check.end()
    }
  })
})
