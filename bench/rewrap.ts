/**
 * Rewrap throughput: ROWS rows with VALUE_BYTES-byte plaintexts, encrypted under one key,
 * rewrapped under the next by the real `rekey rewrap` process (progress kept in a SQLite
 * store beside the env file), on PostgreSQL (fresh schema, dropped afterwards) and SQLite.
 * Prints a table; rows/s counts every row of the table over the whole run, process start
 * included.
 *
 *   REKEY_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test node bench/rewrap.ts
 *   ROWS=100000 VALUE_BYTES=1024 BATCH=2000 node bench/rewrap.ts
 *
 * Side by side (before/after on a busy machine): REKEY_BINS lists `rekey.js` files to
 * compare, ROUNDS how often to alternate them, each run on a freshly loaded table;
 * ONLY=postgres or ONLY=sqlite runs one database.
 *   REKEY_BINS=/work/main/bin/rekey.js,bin/rekey.js ROUNDS=3 ONLY=postgres node bench/rewrap.ts
 */
import { spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import pg from 'pg'
import { Cipher } from '../src/crypt.ts'

const ROWS = Number(process.env.ROWS ?? 100_000)
const VALUE_BYTES = Number(process.env.VALUE_BYTES ?? 1024)
const BATCH = process.env.BATCH ?? '2000'
const POSTGRES_URL = process.env.REKEY_TEST_POSTGRES_URL ?? ''
const BINS = (process.env.REKEY_BINS ?? path.resolve(import.meta.dirname, '../bin/rekey.js')).split(',').map((b) => path.resolve(b))
const ROUNDS = Number(process.env.ROUNDS ?? 1)
const ONLY = process.env.ONLY ?? ''

const dir = mkdtempSync(path.join(os.tmpdir(), 'rekey-bench-rewrap-'))
const oldKey = randomBytes(32).toString('hex')
const newKey = randomBytes(32).toString('hex')
const envFile = path.join(dir, '.env')
writeFileSync(envFile, `ENCRYPTION_KEY=${newKey}\nENCRYPTION_KEY_PREV=${oldKey}\nREKEY_MASTER_KEY=${randomBytes(32).toString('base64')}\n`, { mode: 0o600 })
const old = Cipher.fromEnv({ ENCRYPTION_KEY: oldKey })
const plain = randomBytes(VALUE_BYTES).toString('base64').slice(0, VALUE_BYTES)

function values(): Array<[number, string]> {
  const rows: Array<[number, string]> = []
  for (let id = 1; id <= ROWS; id++) rows.push([id, old.encrypt(plain, { aad: String(id) })])
  return rows
}

function runRewrap(bin: string, url: string, table: string): { ms: number, done: Record<string, unknown> } {
  rmSync(path.join(dir, '.rekey'), { recursive: true, force: true })
  const start = performance.now()
  const res = spawnSync(process.execPath, [bin, '--env-file', envFile, 'rewrap', '--url', url, '--table', table, '--column', 'payload', '--aad-columns', 'id', '--batch-size', BATCH], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 })
  const ms = performance.now() - start
  if (res.status !== 0) throw new Error(`rewrap failed: ${res.stderr}`)
  const done = res.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.event === 'done') as Record<string, unknown>
  return { ms, done }
}

const results: string[] = []
const row = (db: string, bin: string, r: { ms: number, done: Record<string, unknown> }): void => {
  const label = BINS.length === 1 ? db : `${db} (${path.relative(process.cwd(), bin) || bin}, load ${os.loadavg()[0]?.toFixed(1)})`
  results.push(`| ${label} | ${ROWS.toLocaleString('en-US')} | ${VALUE_BYTES} B | ${String(r.done.rewrapped)} | ${(r.ms / 1000).toFixed(2)} s | ${Math.round(ROWS / (r.ms / 1000)).toLocaleString('en-US')} |`)
}

try {
  if (POSTGRES_URL !== '' && ONLY !== 'sqlite') {
    const schema = `bench_rewrap_${randomBytes(4).toString('hex')}`
    const client = new pg.Client({ connectionString: POSTGRES_URL })
    await client.connect()
    try {
      await client.query(`CREATE SCHEMA ${schema}`)
      const rows = values()
      for (let round = 0; round < ROUNDS; round++) {
        for (const bin of BINS) {
          await client.query(`DROP TABLE IF EXISTS ${schema}.secrets; CREATE TABLE ${schema}.secrets (id bigint PRIMARY KEY, payload text)`)
          for (let i = 0; i < rows.length; i += 5000) {
            const part = rows.slice(i, i + 5000)
            await client.query(`INSERT INTO ${schema}.secrets SELECT * FROM unnest($1::bigint[], $2::text[])`, [part.map((r) => r[0]), part.map((r) => r[1])])
          }
          await client.query(`VACUUM ANALYZE ${schema}.secrets`)
          row('PostgreSQL 15', bin, runRewrap(bin, POSTGRES_URL, `${schema}.secrets`))
        }
      }
      // The floor on this machine at this moment: the server rewriting every row by itself,
      // one statement, no client, no crypto. rekey cannot beat it; the ratio is what counts.
      await client.query(`VACUUM ${schema}.secrets`)
      const start = performance.now()
      await client.query(`UPDATE ${schema}.secrets SET payload = 'rk1.' || substr(payload, 5)`)
      const ms = performance.now() - start
      results.push(`| PostgreSQL floor: one server-side UPDATE of every row (no client, no crypto) | ${ROWS.toLocaleString('en-US')} | - | - | ${(ms / 1000).toFixed(2)} s | ${Math.round(ROWS / (ms / 1000)).toLocaleString('en-US')} |`)
    } finally {
      await client.query(`DROP SCHEMA ${schema} CASCADE`)
      await client.end()
    }
  }
  if (ONLY !== 'postgres') {
    const rows = values()
    for (let round = 0; round < ROUNDS; round++) {
      for (const bin of BINS) {
        const file = path.join(dir, 'app.db')
        for (const f of [file, `${file}-wal`, `${file}-shm`]) rmSync(f, { force: true })
        const db = new DatabaseSync(file)
        db.exec('PRAGMA journal_mode = WAL; CREATE TABLE secrets (id INTEGER PRIMARY KEY, payload TEXT)')
        const insert = db.prepare('INSERT INTO secrets VALUES (?, ?)')
        db.exec('BEGIN')
        for (const [id, value] of rows) insert.run(id, value)
        db.exec('COMMIT')
        db.close()
        row('SQLite (WAL)', bin, runRewrap(bin, file, 'secrets'))
      }
    }
  }
  console.log(`rewrap benchmark: node ${process.version}, ${os.cpus()[0]?.model.split(' ').slice(0, 2).join(' ') ?? 'cpu'} x${os.cpus().length}, load average ${os.loadavg()[0]?.toFixed(1)}, batch ${BATCH}\n`)
  console.log('| database | rows | plaintext | rewrapped | wall time (process) | rows/s |')
  console.log('| --- | ---: | ---: | ---: | ---: | ---: |')
  for (const line of results) console.log(line)
} finally {
  rmSync(dir, { recursive: true, force: true })
}
