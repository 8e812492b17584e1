/**
 * Authentic backups and restores that never race a live instance (SQLite; real files, the real
 * CLI in-process, a real `rekey serve` process for the heartbeat).
 *
 * The attacker of these tests can write to the backup bucket and knows the victim's public age
 * recipient (it is public by design), but not the master key.
 */
import assert from 'node:assert/strict'
import { createHash, randomBytes, randomUUID } from 'node:crypto'
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { Readable } from 'node:stream'
import { describe, test } from 'node:test'
import { DatabaseSync } from 'node:sqlite'
import { Encrypter, generateX25519Identity, identityToRecipient } from 'age-encryption'
import { create as tarCreate } from 'tar'
import { manifestMac } from '../../src/ops/backup/authenticity.ts'
import { createBackup } from '../../src/ops/backup/backup.ts'
import { masterKeyId } from '../../src/service/audit/segments.ts'
import { openStore } from '../../src/store/open.ts'
import { startServe } from '../multi-instance/cluster.ts'
import { filledStore, MASTER_ENV, MASTER_KEY, run } from './backup-fixtures.ts'

/** Rows per table and the schema version of a SQLite file, as a manifest states them. */
function factsOf(file: string): { schemaVersion: number, rowCounts: Record<string, number> } {
  const db = new DatabaseSync(file)
  try {
    const tables = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name").all().map((r) => String(r.name))
    const rowCounts: Record<string, number> = {}
    for (const t of tables) rowCounts[t] = Number(db.prepare(`SELECT count(*) AS n FROM "${t}"`).get()?.n)
    return { schemaVersion: Number(db.prepare('SELECT max(version) AS v FROM schema_migrations').get()?.v), rowCounts }
  } finally {
    db.close()
  }
}

/**
 * Builds, as an attacker would, a well-formed archive encrypted to `recipient`: a rekey store
 * with an admin user of the attacker and, with `trigger`, a trigger that makes every new user
 * an admin. The MAC is computed under `macKey` (the attacker's guess, or the real key when a
 * test plays an insider).
 */
async function forgeArchive(dir: string, recipient: string, macKey: Buffer, trigger: boolean): Promise<string> {
  const work = path.join(dir, `forge-${randomBytes(4).toString('hex')}`)
  mkdirSync(work)
  const file = path.join(work, 'store.sqlite')
  const store = await openStore(file)
  await store.createUser({ id: randomUUID(), email: 'mallory@example.test', passwordHash: '$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA', role: 'admin', createdAt: Date.now() })
  await store.close()
  const db = new DatabaseSync(file)
  if (trigger) db.exec("CREATE TRIGGER promote_everyone AFTER INSERT ON users BEGIN UPDATE users SET role = 'admin' WHERE id = NEW.id; END")
  db.exec('PRAGMA journal_mode = DELETE')
  db.close()
  const bytes = readFileSync(file)
  const manifest = {
    format: 'rekey-backup/2', rekeyVersion: '9.9.9', dialect: 'sqlite', ...factsOf(file),
    createdAt: new Date().toISOString(), masterKeyId: masterKeyId(MASTER_KEY), source: '/var/lib/rekey/rekey.db',
    parts: [{ name: 'store.sqlite', bytes: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex') }],
  }
  const manifestBytes = Buffer.from(JSON.stringify(manifest))
  writeFileSync(path.join(work, 'manifest.json'), manifestBytes)
  writeFileSync(path.join(work, 'manifest.mac'), manifestMac(macKey, manifestBytes))
  const chunks: Buffer[] = []
  for await (const c of Readable.from(tarCreate({ gzip: true, cwd: work, portable: true }, ['manifest.json', 'manifest.mac', 'store.sqlite']))) chunks.push(c as Buffer)
  const e = new Encrypter()
  e.addRecipient(recipient)
  const out = path.join(dir, `forged-${randomBytes(4).toString('hex')}.tgz.age`)
  writeFileSync(out, await e.encrypt(new Uint8Array(Buffer.concat(chunks))))
  return out
}

async function usersOf(storePath: string): Promise<{ count: number, admins: number, triggers: number }> {
  const db = new DatabaseSync(storePath, { readOnly: true })
  try {
    return {
      count: Number(db.prepare('SELECT count(*) AS n FROM users').get()?.n),
      admins: Number(db.prepare("SELECT count(*) AS n FROM users WHERE role = 'admin'").get()?.n),
      triggers: Number(db.prepare("SELECT count(*) AS n FROM sqlite_master WHERE type = 'trigger'").get()?.n),
    }
  } finally {
    db.close()
  }
}

describe('authentic backups (SQLite)', () => {
  test('a forged archive built with the victim\'s public recipient (an admin user and a promoting trigger) is refused by verify and restore; nothing changes', async (t) => {
    const { dir, storePath } = await filledStore(t, 4, 'store/rekey.db')
    const identity = await generateX25519Identity()
    const recipient = await identityToRecipient(identity)
    const identityFile = path.join(dir, 'ops.agekey')
    writeFileSync(identityFile, `${identity}\n`, { mode: 0o600 })
    const forged = await forgeArchive(dir, recipient, randomBytes(32), true)
    const before = await usersOf(storePath)
    for (const argv of [['backup', 'verify', forged, '--identity', identityFile], ['restore', forged, '--identity', identityFile, '--force']]) {
      const result = await run(['--store', storePath, ...argv])
      assert.equal(result.code, 1, `${argv[0]}: ${result.stderr}`)
      assert.match(result.stderr, /^rekey: ERR_BACKUP_INVALID: the archive is not authentic: its MAC does not verify under this store's master key/)
      assert.match(result.stderr, /nothing was restored/)
    }
    assert.deepEqual(await usersOf(storePath), before, 'the store is untouched')
    assert.equal(before.triggers, 0)
    assert.ok(readdirSync(path.dirname(storePath)).every((f) => !f.includes('pre-restore')), 'the store was not even moved aside')
    // The genuine archive of the same store, to the same recipient, restores.
    const made = await run(['--store', storePath, 'backup', '--out', path.join(dir, 'out'), '--recipient', recipient])
    assert.equal(made.code, 0, made.stderr)
    const genuine = path.join(dir, 'out', readdirSync(path.join(dir, 'out'))[0] as string)
    const restored = await run(['--store', storePath, 'restore', genuine, '--identity', identityFile, '--force'])
    assert.equal(restored.code, 0, restored.stderr)
  })

  test('an authentic archive (an insider with the master key) carrying a trigger is still refused: only rekey\'s own schema is restored', async (t) => {
    const { dir, storePath } = await filledStore(t, 2, 'store/rekey.db')
    const identity = await generateX25519Identity()
    const identityFile = path.join(dir, 'ops.agekey')
    writeFileSync(identityFile, `${identity}\n`, { mode: 0o600 })
    const archive = await forgeArchive(dir, await identityToRecipient(identity), MASTER_KEY, true)
    for (const argv of [['backup', 'verify', archive, '--identity', identityFile], ['restore', archive, '--identity', identityFile, '--force']]) {
      const result = await run(['--store', storePath, ...argv])
      assert.equal(result.code, 1, result.stderr)
      assert.match(result.stderr, /objects that are not rekey's own.*trigger promote_everyone on users/)
    }
    assert.equal((await usersOf(storePath)).count, 2)
    // The same archive without the trigger is authentic and rekey's own: it restores (into a new store).
    const clean = await forgeArchive(dir, await identityToRecipient(identity), MASTER_KEY, false)
    const fresh = path.join(dir, 'fresh', 'rekey.db')
    const restored = await run(['--store', fresh, 'restore', clean, '--identity', identityFile], MASTER_ENV)
    assert.equal(restored.code, 0, restored.stderr)
    assert.deepEqual(await usersOf(fresh), { count: 1, admins: 1, triggers: 0 })
  })

  test('backup refuses a store with a planted trigger, view or extra table, naming each', async (t) => {
    const { dir, storePath } = await filledStore(t, 2, 'store/rekey.db')
    const db = new DatabaseSync(storePath)
    db.exec("CREATE TRIGGER promote_everyone AFTER INSERT ON users BEGIN UPDATE users SET role = 'admin' WHERE id = NEW.id; END")
    db.exec('CREATE VIEW admins AS SELECT email FROM users')
    db.exec('CREATE TABLE loot (x TEXT)')
    db.close()
    const made = await run(['--store', storePath, 'backup', '--out', path.join(dir, 'out')], { REKEY_BACKUP_PASSPHRASE: 'correct-horse-battery-staple-42' })
    assert.equal(made.code, 1)
    assert.match(made.stderr, /not rekey's own/)
    for (const what of ['trigger promote_everyone on users', 'view admins', 'table loot']) assert.ok(made.stderr.includes(what), what)
    assert.deepEqual(readdirSync(path.join(dir, 'out')), [], 'no archive written')
  })

  test('without the master key, backup, verify and restore refuse (exit 2) and write no key file', async (t) => {
    const { dir, storePath } = await filledStore(t, 1, 'store/rekey.db')
    const { file } = await createBackup(storePath, path.join(dir, 'out'), { passphrase: 'correct-horse-battery-staple-42', scryptLogN: 10 }, MASTER_KEY)
    const elsewhere = path.join(dir, 'elsewhere', 'rekey.db')
    const env = { REKEY_BACKUP_PASSPHRASE: 'correct-horse-battery-staple-42' }
    for (const argv of [['backup', '--out', path.join(dir, 'out2')], ['backup', 'verify', file], ['restore', file]]) {
      const result = await run(['--store', elsewhere, ...argv], env)
      assert.equal(result.code, 2, `${argv.join(' ')}: ${result.stderr}`)
      assert.match(result.stderr, /ERR_CONFIG: .*REKEY_MASTER_KEY/)
    }
    assert.deepEqual(readdirSync(dir).sort(), ['out', 'store'])
  })

  test('restore refuses while a rekey serve runs on the store, with or without --force, naming it; after it stops, restore works', async (t) => {
    const { dir, storePath } = await filledStore(t, 3, 'store/rekey.db')
    const { file } = await createBackup(storePath, path.join(dir, 'out'), { passphrase: 'correct-horse-battery-staple-42', scryptLogN: 10 }, MASTER_KEY)
    const server = await startServe({ cwd: dir, env: { REKEY_STORE: storePath, ...MASTER_ENV } })
    t.after(() => server.stop())
    const env = { REKEY_BACKUP_PASSPHRASE: 'correct-horse-battery-staple-42', ...MASTER_ENV }
    for (const force of [[], ['--force']]) {
      const result = await run(['--store', storePath, 'restore', file, ...force], env)
      assert.equal(result.code, 1, result.stderr)
      assert.match(result.stderr, /ERR_UNSAFE: restore refused: 1 instance\(s\) are running on .*rekey\.db: \S+ \(\S+ pid \d+, last seen \d+ s ago\)/)
      assert.match(result.stderr, /--force does not override this/)
      assert.ok(result.stderr.includes(`pid ${server.child.pid}`), 'names the running process')
    }
    await server.stop()
    const restored = await run(['--store', storePath, 'restore', file, '--force'], env)
    assert.equal(restored.code, 0, restored.stderr)
    assert.equal((await usersOf(storePath)).count, 3)
  })
})
