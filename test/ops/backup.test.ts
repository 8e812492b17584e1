import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { describe, test } from 'node:test'
import { Decrypter, generateX25519Identity, identityToRecipient } from 'age-encryption'
import { createBackup, verifyBackup } from '../../src/ops/backup/backup.ts'
import { BackupError } from '../../src/ops/backup/backup-error.ts'
import { openStore } from '../../src/store/open.ts'
import { SQLITE_SCHEMA_VERSION } from '../../src/store/sqlite/migrations.ts'
import { FAST, filledStore, fill, maliciousDir, PASSPHRASE, run, sealTgz, tempDir } from './backup-fixtures.ts'

const env = { REKEY_BACKUP_PASSPHRASE: PASSPHRASE }

/** A store with `users` users and a backup of it made through the API (fast scrypt). */
async function backedUp(t: { after: (fn: () => void) => void }, users = 20): Promise<{ dir: string, storePath: string, archive: string }> {
  const { dir, storePath } = await filledStore(t, users, 'store/rekey.db')
  const { file } = await createBackup(storePath, path.join(dir, 'backups'), FAST)
  return { dir, storePath, archive: file }
}

describe('rekey backup (SQLite)', () => {
  test('a live store: backed up while another store object writes; the archive is 0600 and passes the drill', async (t) => {
    const dir = tempDir(t)
    const storePath = path.join(dir, 'store', 'rekey.db')
    const store = await openStore(storePath)
    const writer = await openStore(storePath)
    writeFileSync(path.join(dir, 'store', 'master.key'), 'not in any backup\n')
    await fill(store, 200)
    let writing = true
    let written = 0
    const load = (async () => {
      while (writing) {
        await fill(writer, 1)
        written++
        await new Promise((resolve) => setImmediate(resolve))
      }
    })()
    const result = await createBackup(storePath, path.join(dir, 'backups'), FAST, new Date(Date.UTC(2026, 10, 23, 2, 17, 0)))
    writing = false
    await load
    assert.ok(written > 0, 'the writer kept writing during the backup')
    assert.equal(path.basename(result.file), 'rekey-backup-20261123T021700Z.tgz.age')
    assert.equal(statSync(result.file).mode & 0o777, 0o600)
    assert.deepEqual(readdirSync(path.dirname(result.file)), [path.basename(result.file)], 'no temp file left')
    const users = result.manifest.rowCounts.users ?? 0
    assert.ok(users >= 200 && users <= 200 + written)
    assert.equal(result.manifest.rowCounts.session_families, users, 'the snapshot is consistent: one session per user')
    assert.equal(result.manifest.schemaVersion, SQLITE_SCHEMA_VERSION)
    assert.match(result.manifest.parts[0]?.sha256 ?? '', /^[0-9a-f]{64}$/)
    const report = await verifyBackup(result.file, { passphrase: PASSPHRASE })
    assert.equal(report.manifest.rowCounts.users, users)
    // Exactly the manifest and the snapshot: never the master key file beside the store.
    const d = new Decrypter()
    d.addPassphrase(PASSPHRASE)
    writeFileSync(path.join(dir, 'plain.tgz'), await d.decrypt(readFileSync(result.file)))
    assert.deepEqual(execFileSync('tar', ['-tzf', path.join(dir, 'plain.tgz')], { encoding: 'utf8' }).trim().split('\n'), ['manifest.json', 'store.sqlite'])
    await store.close()
    await writer.close()
  })

  test('the CLI: backup with a recipient, verify with the identity file; exit 0 and nothing secret printed', async (t) => {
    const { dir, storePath } = await filledStore(t, 5, 'store/rekey.db')
    const identity = await generateX25519Identity()
    const identityFile = path.join(dir, 'ops.agekey')
    writeFileSync(identityFile, `# ops key\n${identity}\n`, { mode: 0o600 })
    const made = await run(['--store', storePath, 'backup', '--out', path.join(dir, 'out'), '--recipient', await identityToRecipient(identity)])
    assert.equal(made.code, 0, made.stderr)
    assert.match(made.stdout, /wrote .*rekey-backup-\d{8}T\d{6}Z\.tgz\.age \(\d+ bytes, 0600\)/)
    assert.match(made.stdout, /the master key is not in the archive/)
    const archive = path.join(dir, 'out', readdirSync(path.join(dir, 'out'))[0] as string)
    assert.equal(statSync(archive).mode & 0o777, 0o600)
    const verified = await run(['--store', storePath, 'backup', 'verify', archive, '--identity', identityFile])
    assert.equal(verified.code, 0, verified.stderr)
    assert.match(verified.stdout, /^backup ok: /)
    assert.match(verified.stdout, /integrity ok, \d+ rows in 14 tables/)
    for (const out of [made.stdout, made.stderr, verified.stdout, verified.stderr]) assert.ok(!out.includes(identity.slice(16)))
    // Without a passphrase or identity: bad usage.
    assert.equal((await run(['--store', storePath, 'backup', 'verify', archive])).code, 2)
    assert.equal((await run(['--store', storePath, 'backup', '--out', path.join(dir, 'out2')])).code, 2)
    assert.equal((await run(['--store', storePath, 'backup', '--out', path.join(dir, 'out2')], { REKEY_BACKUP_PASSPHRASE: 'short' })).code, 2)
    assert.equal((await run(['--store', path.join(dir, 'none.db'), 'backup'], env)).code, 2)
  })

  test('a passphrase backup through the CLI (default scrypt work factor) verifies; the passphrase is never printed', async (t) => {
    const { dir, storePath } = await filledStore(t, 3)
    const made = await run(['--store', storePath, '--json', 'backup', '--out', dir], env)
    assert.equal(made.code, 0, made.stderr)
    const { file, rows } = JSON.parse(made.stdout) as { file: string, rows: number }
    assert.ok(rows > 6)
    const verified = await run(['--store', storePath, '--json', 'backup', 'verify', file], env)
    assert.equal(verified.code, 0, verified.stderr)
    assert.equal((JSON.parse(verified.stdout) as { ok: boolean }).ok, true)
    for (const out of [made.stdout, made.stderr, verified.stdout, verified.stderr]) assert.ok(!out.includes(PASSPHRASE))
  })

  test('verify: a wrong passphrase, a flipped byte, a truncated archive: exit 1', async (t) => {
    const { dir, archive } = await backedUp(t)
    const wrong = await run(['backup', 'verify', archive], { REKEY_BACKUP_PASSPHRASE: 'not-the-passphrase-at-all' })
    assert.equal(wrong.code, 1)
    assert.match(wrong.stderr, /cannot be decrypted/)
    const bytes = readFileSync(archive)
    for (const at of [bytes.length - 40, Math.floor(bytes.length / 2)]) {
      const flipped = Buffer.from(bytes)
      flipped[at] = (flipped[at] as number) ^ 0x01
      const file = path.join(dir, `flipped-${at}.tgz.age`)
      writeFileSync(file, flipped)
      const result = await run(['backup', 'verify', file], env)
      assert.equal(result.code, 1, `a flipped byte at ${at} must fail`)
      assert.match(result.stderr, /damaged|cannot be decrypted/)
    }
    const truncated = path.join(dir, 'truncated.tgz.age')
    writeFileSync(truncated, bytes.subarray(0, bytes.length - 100))
    assert.equal((await run(['backup', 'verify', truncated], env)).code, 1)
    assert.equal((await run(['backup', 'verify', path.join(dir, 'missing.tgz.age')], env)).code, 2)
  })

  test('verify: a manifest whose hash or row count was changed (and re-encrypted) fails: exit 1', async (t) => {
    const { dir, archive } = await backedUp(t)
    const work = path.join(dir, 'work')
    mkdirSync(work)
    const d = new Decrypter()
    d.addPassphrase(PASSPHRASE)
    writeFileSync(path.join(dir, 'plain.tgz'), await d.decrypt(readFileSync(archive)))
    execFileSync('tar', ['-xzf', path.join(dir, 'plain.tgz'), '-C', work])
    const manifest = JSON.parse(readFileSync(path.join(work, 'manifest.json'), 'utf8')) as { parts: Array<{ sha256: string }>, rowCounts: Record<string, number> }
    const original = JSON.stringify(manifest)
    manifest.parts[0]!.sha256 = manifest.parts[0]!.sha256.replace(/^./, (c) => (c === '0' ? '1' : '0'))
    writeFileSync(path.join(work, 'manifest.json'), JSON.stringify(manifest))
    await sealTgz(work, ['manifest.json', 'store.sqlite'], path.join(dir, 'hash.tgz.age'))
    const hash = await run(['backup', 'verify', path.join(dir, 'hash.tgz.age')], env)
    assert.equal(hash.code, 1)
    assert.match(hash.stderr, /does not match its SHA-256/)
    const counts = JSON.parse(original) as typeof manifest
    counts.rowCounts.users = (counts.rowCounts.users ?? 0) + 1
    writeFileSync(path.join(work, 'manifest.json'), JSON.stringify(counts))
    await sealTgz(work, ['manifest.json', 'store.sqlite'], path.join(dir, 'counts.tgz.age'))
    const count = await run(['backup', 'verify', path.join(dir, 'counts.tgz.age')], env)
    assert.equal(count.code, 1)
    assert.match(count.stderr, /restore drill failed: users: 20 rows, the manifest says 21/)
  })

  test('restore refuses a store with data without --force (ERR_UNSAFE), then replaces it; the data matches the backup', async (t) => {
    const { dir, storePath, archive } = await backedUp(t, 7)
    const before = await openStore(storePath)
    const count = async (s: typeof before): Promise<number> => s.countUsers()
    assert.equal(await count(before), 7)
    await fill(before, 3) // changes after the backup, which the restore must undo
    await before.close()
    const refused = await run(['--store', storePath, 'restore', archive], env)
    assert.equal(refused.code, 1)
    assert.match(refused.stderr, /ERR_UNSAFE: the store .* holds data/)
    const forced = await run(['--store', storePath, 'restore', archive, '--force'], env)
    assert.equal(forced.code, 0, forced.stderr)
    assert.match(forced.stdout, /the replaced store is kept as .*pre-restore-/)
    assert.equal(statSync(storePath).mode & 0o777, 0o600)
    const after = await openStore(storePath)
    assert.equal(await count(after), 7)
    await after.close()
    // Into a new location: no --force needed.
    const fresh = path.join(dir, 'fresh', 'rekey.db')
    const restored = await run(['--store', fresh, 'restore', archive], env)
    assert.equal(restored.code, 0, restored.stderr)
    const reopened = await openStore(fresh)
    assert.equal(await count(reopened), 7)
    await reopened.close()
  })

  test('restore and verify reject archives crafted with traversal, absolute paths, links or unexpected names', async (t) => {
    const dir = tempDir(t)
    const inner = maliciousDir(dir)
    const cases: Array<[string, string[], RegExp]> = [
      ['traversal', ['manifest.json', '../escape.txt'], /points outside the archive/],
      ['absolute', ['manifest.json', path.join(dir, 'evil', 'escape.txt')], /points outside the archive/],
      ['symlink', ['manifest.json', 'store.sqlite'], /SymbolicLink, not a regular file/],
      ['unexpected', ['manifest.json', '../inner/manifest.json', 'x'], /points outside|not a file a rekey backup holds/],
    ]
    writeFileSync(path.join(inner, 'x'), 'x')
    const storePath = path.join(dir, 'target', 'rekey.db')
    for (const [name, entries, why] of cases) {
      const file = path.join(dir, `${name}.tgz.age`)
      await sealTgz(inner, entries, file)
      for (const argv of [['backup', 'verify', file], ['--store', storePath, 'restore', file, '--force']]) {
        const result = await run(argv, env)
        assert.equal(result.code, 1, `${name}: ${argv[0]}`)
        assert.match(result.stderr, why, name)
      }
    }
    assert.equal(existsSync(storePath), false, 'nothing was restored')
    assert.equal(readFileSync(path.join(dir, 'evil', 'escape.txt'), 'utf8'), 'escaped', 'nothing was overwritten outside')
    assert.ok(!readdirSync(path.join(dir, 'evil')).includes('store.sqlite'))
  })

  test('a BackupError is what the API throws for a damaged archive', async (t) => {
    const { archive } = await backedUp(t, 1)
    await assert.rejects(verifyBackup(archive, { passphrase: 'wrong-passphrase-wrong' }), BackupError)
  })
})
