import assert from 'node:assert/strict'
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { describe, test } from 'node:test'
import { runBin } from '../cli/helpers.ts'
import { MASTER_ENV, PASSPHRASE, sealTgz, tempDir } from './backup-fixtures.ts'

describe('a decompression bomb in a backup archive', () => {
  // Zeros gzip at about 1030:1 and the reader stops past 1000:1, so a few MB trip it as 1.5 GB
  // would. 8 MB is found within one decrypted chunk (it used to hang, exit 13); 80 MB spans
  // several, found while the reader waits on the decrypter (it used to crash with a stack trace).
  for (const megabytes of [8, 80]) {
    test(`${megabytes} MB of zeros: verify and restore refuse it with one rekey: line (exit 1) and leave no temp directory`, async (t) => {
      const dir = tempDir(t)
      const inner = path.join(dir, 'bomb')
      mkdirSync(inner)
      writeFileSync(path.join(inner, 'manifest.json'), '{}')
      writeFileSync(path.join(inner, 'store.sqlite'), Buffer.alloc(megabytes * 1024 * 1024))
      const archive = path.join(dir, 'bomb.tgz.age')
      await sealTgz(inner, ['manifest.json', 'store.sqlite'], archive)
      const tmp = path.join(dir, 'tmp')
      mkdirSync(tmp)
      const env = { REKEY_BACKUP_PASSPHRASE: PASSPHRASE, ...MASTER_ENV, TMPDIR: tmp }
      for (const argv of [['backup', 'verify', archive], ['--store', path.join(dir, 'target', 'rekey.db'), 'restore', archive, '--force']]) {
        const result = await runBin(argv, { cwd: dir, env })
        assert.equal(result.code, 1, `${argv.join(' ')}: ${result.stderr}`)
        assert.match(result.stderr, /^rekey: ERR_BACKUP_INVALID: the archive is damaged: max decompression ratio exceeded: [\d.]+ > 1000\n$/)
        assert.deepEqual(readdirSync(tmp).filter((name) => name.startsWith('rekey-backup-')), [], 'the temp directory is removed')
      }
    })
  }
})
