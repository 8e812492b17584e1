/**
 * Backup, verify (the restore drill) and restore of a PostgreSQL store in the default `public`
 * schema (the compose example's setup) holding N users with one session and refresh token
 * each, in a database created for the run (dropped afterwards). Restore goes into a second,
 * empty database. Prints a table; `rekey` does the same through its CLI.
 *
 *   REKEY_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test npm run bench:backup
 *   USERS=10000 ROUNDS=3 ... npm run bench:backup
 */
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync, statSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { generateX25519Identity, identityToRecipient } from 'age-encryption'
import pg from 'pg'
import { createBackup, restoreBackup, verifyBackup } from '../src/ops/backup/backup.ts'
import { openStore } from '../src/store/open.ts'

const BASE = process.env.REKEY_TEST_POSTGRES_URL ?? ''
const USERS = Number(process.env.USERS ?? 10_000)
const ROUNDS = Number(process.env.ROUNDS ?? 3)
if (BASE === '') {
  console.error('set REKEY_TEST_POSTGRES_URL (a server where this role may CREATE DATABASE)')
  process.exit(2)
}

async function admin(sql: string, url = BASE): Promise<void> {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    await client.query(sql)
  } finally {
    await client.end()
  }
}

function urlOf(db: string): string {
  const u = new URL(BASE)
  u.pathname = `/${db}`
  u.search = ''
  return u.toString()
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number
const ms = (t0: number): number => performance.now() - t0
const fmt = (x: number): string => `${(x / 1000).toFixed(2)} s`

const tag = randomBytes(4).toString('hex')
const sourceDb = `rekey_bench_src_${tag}`
const dbs = [sourceDb]
const dir = mkdtempSync(path.join(os.tmpdir(), 'rekey-bench-backup-'))
const masterKey = randomBytes(32)
try {
  await admin(`CREATE DATABASE ${sourceDb}`)
  const source = urlOf(sourceDb)
  const store = await openStore(source, { max: 2 })
  await store.close()
  // Rows as the service writes them, inserted in bulk (the figures are about backups, not sign-ups).
  const now = Date.now()
  await admin(`
    INSERT INTO users (id, email, password_hash, role, token_version, created_at)
      SELECT 'u' || g, 'user' || g || '@example.test', '$argon2id$v=19$m=19456,t=2,p=1$' || md5(g::text) || '$' || md5('h' || g), 'user', 0, ${now} FROM generate_series(1, ${USERS}) g;
    INSERT INTO session_families (id, user_id, created_at, expires_at) SELECT 'f' || g, 'u' || g, ${now}, ${now + 86_400_000} FROM generate_series(1, ${USERS}) g;
    INSERT INTO refresh_tokens (token_hash, family_id, kid, issued_at, expires_at) SELECT md5('t' || g) || md5('s' || g), 'f' || g, 'kid-r1', ${now}, ${now + 86_400_000} FROM generate_series(1, ${USERS}) g;
  `, source)

  const identity = await generateX25519Identity()
  const recipient = await identityToRecipient(identity)
  const passphrase = randomBytes(24).toString('base64url')
  const rows: Array<[string, number[]]> = [['backup (recipient)', []], ['backup (passphrase, scrypt 2^18)', []], ['verify (recipient)', []], ['verify (passphrase)', []], ['restore into an empty database (recipient)', []]]
  let size = 0
  for (let round = 0; round < ROUNDS; round++) {
    const out = path.join(dir, `r${round}`)
    let t0 = performance.now()
    const a = await createBackup(source, path.join(out, 'a'), { recipients: [recipient] }, masterKey)
    rows[0]![1].push(ms(t0))
    size = statSync(a.file).size
    t0 = performance.now()
    const b = await createBackup(source, path.join(out, 'b'), { passphrase }, masterKey)
    rows[1]![1].push(ms(t0))
    t0 = performance.now()
    await verifyBackup(a.file, { identities: [identity] }, masterKey, source)
    rows[2]![1].push(ms(t0))
    t0 = performance.now()
    await verifyBackup(b.file, { passphrase }, masterKey, source)
    rows[3]![1].push(ms(t0))
    const target = `rekey_bench_dst_${tag}_${round}`
    dbs.push(target)
    await admin(`CREATE DATABASE ${target}`)
    t0 = performance.now()
    await restoreBackup(a.file, { identities: [identity] }, urlOf(target), masterKey, { operator: 'bench' })
    rows[4]![1].push(ms(t0))
  }
  console.log(`backup benchmark: node ${process.version}, ${os.cpus()[0]?.model.trim() ?? 'cpu'} x${os.cpus().length}, PostgreSQL store in public, ${USERS.toLocaleString('en-US')} users (+1 session and 1 refresh token each), median of ${ROUNDS}\n`)
  console.log('| step | time |')
  console.log('| --- | ---: |')
  for (const [name, times] of rows) console.log(`| ${name} | ${fmt(median(times))} |`)
  console.log(`| archive size | ${(size / 1024 / 1024).toFixed(1)} MB |`)
} finally {
  for (const db of dbs) await admin(`DROP DATABASE IF EXISTS ${db} WITH (FORCE)`).catch(() => {})
  rmSync(dir, { recursive: true, force: true })
}
