/**
 * An interrupted `rekey restore` or `rekey backup verify` on PostgreSQL, as real processes on
 * the real server: SIGINT, SIGTERM and SIGHUP remove the decrypted dump and drop the drill
 * database before the one-line error; after a kill -9 the next run removes what the dead one
 * left, and never what a live run (its lock held) still uses.
 *
 * The drill's `pg_restore` is the real one behind a shim that first sleeps (a big store's
 * restore), so the signal lands while the dump is decrypted and the database exists.
 * Skipped visibly without REKEY_TEST_POSTGRES_URL; failing when REKEY_REQUIRE_POSTGRES=1.
 */
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { after, before, describe, test } from 'node:test'
import pg from 'pg'
import { createBackup } from '../../src/ops/backup/backup.ts'
import { openStore } from '../../src/store/open.ts'
import { adminQuery } from '../store/support/stores.ts'
import { runRekey, spawnRekey, urlWithSchema, type Proc } from '../multi-instance/cluster.ts'
import { FAST, fill, MASTER_ENV, PASSPHRASE, MASTER_KEY, tempDir } from './backup-fixtures.ts'

const BASE = process.env.REKEY_TEST_POSTGRES_URL ?? ''
const REQUIRE = process.env.REKEY_REQUIRE_POSTGRES === '1'
const skip = BASE === '' && !REQUIRE ? 'REKEY_TEST_POSTGRES_URL is not set; PostgreSQL interrupt tests skipped' : false

const query = adminQuery

const databaseExists = async (name: string): Promise<boolean> => (await query('SELECT 1 FROM pg_database WHERE datname = $1', [name])).rows.length > 0

interface Fixture {
  readonly dir: string
  readonly archive: string
  readonly url: string
  /** The CLI's environment: its own TMPDIR, so its temporary directories are this test's to see. */
  readonly env: Record<string, string>
  /** The same, with the slow pg_restore first on PATH, logging to `log`. */
  readonly slowEnv: Record<string, string>
  readonly tmp: string
  readonly log: string
}

const databases: string[] = []
const shims: number[] = []

async function fixture(t: { after: (fn: () => void) => void }): Promise<Fixture> {
  const dir = tempDir(t)
  const database = `rekey_int_${randomBytes(5).toString('hex')}`
  await query(`CREATE DATABASE ${database}`)
  databases.push(database)
  const plain = new URL(BASE)
  plain.pathname = `/${database}`
  const url = urlWithSchema(plain.toString(), 'rekey_int')
  const setup = new pg.Client({ connectionString: plain.toString() })
  await setup.connect()
  await setup.query('CREATE SCHEMA rekey_int')
  await setup.end()
  const store = await openStore(url, { max: 1 })
  await fill(store, 20)
  await store.close()
  const { file } = await createBackup(url, dir, FAST, MASTER_KEY)
  const tmp = path.join(dir, 'tmp')
  const bin = path.join(dir, 'bin')
  const log = path.join(dir, 'slow-restore.log')
  mkdirSync(tmp)
  mkdirSync(bin)
  const real = execFileSync('sh', ['-c', 'command -v pg_restore'], { encoding: 'utf8' }).trim()
  writeFileSync(path.join(bin, 'pg_restore'), `#!/bin/sh\ncase "$*" in *--dbname=*) echo "$$ $*" >> "${log}"; sleep 20;; esac\nexec "${real}" "$@"\n`)
  chmodSync(path.join(bin, 'pg_restore'), 0o755)
  // pg_dump likewise, for rekey backup: it logs the dump file it was asked for, then sleeps.
  const realDump = execFileSync('sh', ['-c', 'command -v pg_dump'], { encoding: 'utf8' }).trim()
  writeFileSync(path.join(bin, 'pg_dump'), `#!/bin/sh\necho "$$ $*" >> "${log}"; sleep 20\nexec "${realDump}" "$@"\n`)
  chmodSync(path.join(bin, 'pg_dump'), 0o755)
  const env = { ...MASTER_ENV, REKEY_BACKUP_PASSPHRASE: PASSPHRASE, TMPDIR: tmp }
  return { dir, archive: file, url, env, slowEnv: { ...env, PATH: `${bin}:${process.env.PATH ?? ''}` }, tmp, log }
}

/** Waits until the slow pg_restore has started `count` times; the drill databases it restores into. */
async function drillsStarted(f: Fixture, count: number): Promise<string[]> {
  for (let i = 0; i < 1500; i++) {
    const lines = existsSync(f.log) ? readFileSync(f.log, 'utf8').trim().split('\n').filter((l) => l !== '') : []
    if (lines.length >= count) {
      for (const line of lines) shims.push(Number(line.split(' ')[0]))
      return lines.map((l) => /rekey_verify_[0-9a-f]{12}/.exec(l)?.[0] as string)
    }
    await sleep(20)
  }
  throw new Error('the drill never started')
}

const tempDirs = (f: Fixture): string[] => readdirSync(f.tmp).filter((n) => n.startsWith('rekey-backup-')).sort()

function startSlow(f: Fixture, args: string[]): Proc {
  return spawnRekey(['--store', f.url, ...args, f.archive], { cwd: f.dir, env: f.slowEnv })
}

describe('interrupted backup verify and restore (PostgreSQL)', { skip }, () => {
  before(() => {
    if (BASE === '') throw new Error('REKEY_REQUIRE_POSTGRES=1 but REKEY_TEST_POSTGRES_URL is not set')
  })
  after(async () => {
    for (const pid of shims) try { process.kill(pid, 'SIGKILL') } catch { /* gone */ }
    for (const name of databases) await query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).catch(() => {})
  })

  for (const [command, signal] of [[['restore', '--force'], 'SIGINT'], [['backup', 'verify'], 'SIGTERM'], [['backup', 'verify'], 'SIGHUP']] as const) {
    test(`${signal} during rekey ${command.join(' ')}: the decrypted dump and the drill database are removed, then the one-line error`, async (t) => {
      const f = await fixture(t)
      const run = startSlow(f, [...command])
      const [drillDb] = await drillsStarted(f, 1)
      assert.ok(await databaseExists(drillDb as string), 'the drill database exists while the drill runs')
      const [owned] = tempDirs(f)
      assert.ok(owned !== undefined && existsSync(path.join(f.tmp, owned, 'store.pgdump')), 'the decrypted dump is there while the drill runs')
      run.child.kill(signal)
      const { code } = await run.exited
      const stderr = run.stderr.join('')
      assert.equal(code, 1, stderr)
      assert.match(stderr, new RegExp(`^rekey: ERR_REFUSED: interrupted by ${signal}; removed `, 'm'))
      assert.match(stderr, new RegExp(`removed .*database ${drillDb}`))
      assert.match(stderr, new RegExp(`removed .*${path.join(f.tmp, owned)}`))
      // (A dead run of another test on the shared server may have left something this run removed first.)
      const lines = stderr.trim().split('\n').filter((l) => !l.startsWith('rekey: removed what an interrupted earlier'))
      assert.equal(lines.length, 1, `one line: ${stderr}`)
      assert.deepEqual(tempDirs(f), [], 'no decrypted copy of the store is left')
      assert.equal(await databaseExists(drillDb as string), false, 'no restored copy of the store is left')
      assert.ok(!stderr.includes(PASSPHRASE) && !stderr.includes(MASTER_KEY.toString('base64')))
      assert.match(owned, new RegExp(`-${run.child.pid}-`), 'the directory names its process')
    })
  }

  test('SIGINT during rekey backup: the snapshot directory and the pg_dump are gone, no archive is written', async (t) => {
    const f = await fixture(t)
    const out = path.join(f.dir, 'out')
    const run = spawnRekey(['--store', f.url, 'backup', '--out', out], { cwd: f.dir, env: f.slowEnv })
    await drillsStarted(f, 1)
    const [owned] = tempDirs(f)
    assert.ok(owned !== undefined, 'the snapshot directory exists while pg_dump runs')
    run.child.kill('SIGINT')
    const { code } = await run.exited
    const stderr = run.stderr.join('')
    assert.equal(code, 1, stderr)
    assert.match(stderr, new RegExp(`^rekey: ERR_REFUSED: interrupted by SIGINT; removed .*${path.join(f.tmp, owned)}`, 'm'))
    assert.deepEqual(tempDirs(f), [])
    assert.deepEqual(existsSync(out) ? readdirSync(out) : [], [], 'no archive, complete or partial')
    const [pid] = readFileSync(f.log, 'utf8').split(' ')
    assert.throws(() => process.kill(Number(pid), 0), /ESRCH/, 'pg_dump was stopped')
  })

  test('after a kill -9, the next run removes the dead run\'s dump and database, and leaves a live run\'s alone', async (t) => {
    const f = await fixture(t)
    const dead = startSlow(f, ['backup', 'verify'])
    const [deadDb] = await drillsStarted(f, 1)
    const [deadDir] = tempDirs(f)
    const live = startSlow(f, ['backup', 'verify'])
    const [, liveDb] = await drillsStarted(f, 2)
    const liveDir = tempDirs(f).find((n) => n !== deadDir) as string
    dead.child.kill('SIGKILL')
    await dead.exited
    // The server ends the dead session (its lock) once it sees the socket closed.
    for (let i = 0; i < 100 && (await query('SELECT 1 FROM pg_locks WHERE locktype = \'advisory\' AND objid = hashtext($1)::oid', [deadDb])).rows.length > 0; i++) await sleep(50)
    assert.ok(await databaseExists(deadDb as string), 'a kill -9 leaves the database (nothing can catch it)')
    assert.ok(existsSync(path.join(f.tmp, deadDir as string, 'store.pgdump')), 'and the decrypted dump')

    const next = await runRekey(['--store', f.url, 'backup', 'verify', f.archive], { cwd: f.dir, env: f.env })
    assert.equal(next.code, 0, next.stderr)
    assert.match(next.stderr, new RegExp(`rekey: removed what an interrupted earlier backup, verify or restore left: .*${deadDir}`))
    assert.match(next.stderr, new RegExp(`rekey: removed what an interrupted earlier backup, verify or restore left: .*database ${deadDb}`))
    assert.doesNotMatch(next.stderr, new RegExp(`${liveDir}|${liveDb}`))
    assert.equal(await databaseExists(deadDb as string), false, 'the dead run\'s database is dropped')
    assert.equal(existsSync(path.join(f.tmp, deadDir as string)), false, 'the dead run\'s dump is removed')
    assert.ok(await databaseExists(liveDb as string), 'the live run\'s database is left')
    assert.ok(existsSync(path.join(f.tmp, liveDir, 'store.pgdump')), 'the live run\'s directory is left')

    live.child.kill('SIGINT')
    assert.equal((await live.exited).code, 1)
    assert.deepEqual(tempDirs(f), [])
    assert.equal(await databaseExists(liveDb as string), false)
  })
})
