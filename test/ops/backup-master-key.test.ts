/**
 * Restoring a SQLite store after a master-key rotation, with the key the backup was made under:
 * the `master.key` beside the store must end up holding that key (the previous one kept), and
 * restore says which key the store needs, never printing one. Through the CLI, real files.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { readFileSync, statSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { test } from 'node:test'
import { createBackup } from '../../src/ops/backup/backup.ts'
import { masterKeyId } from '../../src/service/audit/segments.ts'
import { FAST, filledStore, MASTER_ENV, MASTER_KEY, PASSPHRASE, run } from './backup-fixtures.ts'

test('restore with the old master key after a rotation: master.key is replaced by it (the newer one kept), serve and audit --verify work without REKEY_MASTER_KEY', async (t) => {
  const { dir, storePath } = await filledStore(t, 3)
  const keyFile = path.join(dir, 'master.key')
  const { file } = await createBackup(storePath, path.join(dir, 'backups'), FAST, MASTER_KEY)
  // The rotation: master.key now holds a newer key.
  const newer = randomBytes(32)
  writeFileSync(keyFile, `${newer.toString('base64')}\n`, { mode: 0o600 })

  const restored = await run(['--store', storePath, 'restore', file, '--force'], { REKEY_BACKUP_PASSPHRASE: PASSPHRASE, ...MASTER_ENV })
  assert.equal(restored.code, 0, restored.stderr)
  // Without REKEY_MASTER_KEY, as the next `rekey serve` runs: master.key opens the restored store.
  const verified = await run(['--store', storePath, 'audit', '--verify'], {})
  assert.equal(verified.code, 0, verified.stderr + verified.stdout)
  const kept = `${keyFile}.pre-restore-`
  assert.match(restored.stdout, new RegExp(`needs master key k:${masterKeyId(MASTER_KEY)} .*; ${keyFile} held another key, so it now holds this one \\(0600\\); the previous one is kept as ${kept}\\d{8}T\\d{6}Z \\(0600\\)`))
  for (const key of [MASTER_KEY, newer]) {
    for (const form of [key.toString('base64'), key.toString('hex'), key.toString('base64url')]) assert.ok(!`${restored.stdout}${restored.stderr}`.includes(form), 'no key is printed')
  }
  assert.deepEqual(Buffer.from(readFileSync(keyFile, 'utf8').trim(), 'base64'), MASTER_KEY)
  assert.equal(statSync(keyFile).mode & 0o777, 0o600)
  const keptFile = /previous one is kept as (\S+) /.exec(restored.stdout)?.[1] as string
  assert.deepEqual(Buffer.from(readFileSync(keptFile, 'utf8').trim(), 'base64'), newer, 'the replaced store\'s key is kept')
  assert.equal(statSync(keptFile).mode & 0o777, 0o600)

  // A second restore with the same key: master.key already holds it, nothing replaced.
  const again = await run(['--store', storePath, 'restore', file, '--force'], { REKEY_BACKUP_PASSPHRASE: PASSPHRASE, ...MASTER_ENV })
  assert.equal(again.code, 0, again.stderr)
  assert.match(again.stdout, new RegExp(`needs master key k:${masterKeyId(MASTER_KEY)} .*; ${keyFile} holds it`))
})

test('restore of a store with no master.key beside it: none is written, and the output says REKEY_MASTER_KEY must be the key', async (t) => {
  const { dir, storePath } = await filledStore(t, 1)
  const { file } = await createBackup(storePath, path.join(dir, 'backups'), FAST, MASTER_KEY)
  const { rmSync, existsSync } = await import('node:fs')
  rmSync(path.join(dir, 'master.key'))
  const restored = await run(['--store', storePath, 'restore', file, '--force'], { REKEY_BACKUP_PASSPHRASE: PASSPHRASE, ...MASTER_ENV })
  assert.equal(restored.code, 0, restored.stderr)
  assert.match(restored.stdout, /there is no .*master\.key: every command and rekey serve need REKEY_MASTER_KEY set to it/)
  assert.equal(existsSync(path.join(dir, 'master.key')), false)
})
