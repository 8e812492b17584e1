import { readFile } from 'node:fs/promises'
import type { Command } from 'commander'
import { RekeyError } from '../../core/errors.ts'
import { parseS3Url, uploadToS3 } from '../../ops/backup/s3-upload.ts'
import { maskLocation } from '../../store/errors.ts'
import { resolveMasterKey } from '../../config/master-key.ts'
import { commandConfig } from '../audit-store.ts'
import type { CliIo, GlobalOptions } from '../context.ts'
import { removeLeftoversOf, runInterruptible } from '../interruptible.ts'

interface BackupOptions {
  out: string
  recipient?: string[]
  s3?: string
  kmsKeyId?: string
}

const collect = (value: string, previous: string[] = []): string[] => [...previous, value]

/** The identities of an age identity file (`AGE-SECRET-KEY-1...` lines; `#` comments). */
export async function readIdentities(file: string): Promise<string[]> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch {
    throw new RekeyError('ERR_CONFIG', `cannot read the identity file ${file}`)
  }
  const identities = text.split(/\r?\n/).map((l) => l.trim()).filter((l) => l.startsWith('AGE-SECRET-KEY-'))
  if (identities.length === 0) throw new RekeyError('ERR_CONFIG', `${file} holds no age identity (AGE-SECRET-KEY-1...)`)
  return identities
}

/** `rekey backup` and `rekey backup verify`. */
export function registerBackup(program: Command, io: CliIo): void {
  const backup = program
    .command('backup')
    .description('encrypted, authenticated backup of the store (MAC keyed from the master key, which is never inside): rekey-backup-<UTC stamp>.tgz.age, 0600')
    .option('--out <dir>', 'directory for the archive', './backups')
    .option('--recipient <age1...>', 'encrypt to this age recipient instead of REKEY_BACKUP_PASSPHRASE (repeatable)', collect)
    .option('--s3 <s3://bucket/prefix>', 'also upload the archive (needs @aws-sdk/client-s3; AWS_* variables)')
    .option('--kms-key-id <id>', 'with --s3: server-side encryption with this KMS key instead of AES256')
    .addHelpText('after', [
      '',
      'Examples:',
      '  REKEY_BACKUP_PASSPHRASE=... rekey backup',
      '  rekey --store postgres://rekey@db/rekey backup --recipient age1... --s3 s3://backups/rekey',
      '  rekey backup verify backups/rekey-backup-20261123T021700Z.tgz.age',
    ].join('\n'))
    .action(async (options: BackupOptions, command: Command) => {
      const globals = command.optsWithGlobals<GlobalOptions>()
      const target = options.s3 === undefined ? undefined : parseS3Url(options.s3)
      if (options.kmsKeyId !== undefined && target === undefined) throw new RekeyError('ERR_CONFIG', '--kms-key-id needs --s3')
      const config = await commandConfig(io, globals)
      const location = config.store
      const started = Date.now()
      // The archive's MAC is keyed from the store's master key: never generated here.
      const masterKey = (await resolveMasterKey(config)).key
      const { createBackup } = await import('../../ops/backup/backup.ts')
      await removeLeftoversOf(io, location)
      const result = await runInterruptible(io, globals.json === true, () => createBackup(location, options.out, {
        ...(options.recipient === undefined ? { passphrase: io.env.REKEY_BACKUP_PASSPHRASE } : { recipients: options.recipient }),
      }, masterKey))
      const uploaded = target === undefined ? undefined : await uploadToS3(result.file, target, options.kmsKeyId)
      const m = result.manifest
      const rows = Object.values(m.rowCounts).reduce((a, b) => a + b, 0)
      const report = { file: result.file, bytes: result.bytes, dialect: m.dialect, schemaVersion: m.schemaVersion, rows, rowCounts: m.rowCounts, createdAt: m.createdAt, ms: Date.now() - started, ...(uploaded === undefined ? {} : { uploaded }) }
      if (globals.json === true) {
        io.stdout(`${JSON.stringify(report)}\n`)
        return
      }
      io.stdout(`wrote ${result.file} (${result.bytes} bytes, 0600) in ${report.ms} ms\n`)
      io.stdout(`  ${m.dialect} store ${maskLocation(location)}, schema version ${m.schemaVersion}, ${rows} rows in ${Object.keys(m.rowCounts).length} tables\n`)
      if (uploaded !== undefined) io.stdout(`  uploaded to ${uploaded}\n`)
      io.stdout('  the master key is not in the archive: keep it apart (password manager, KMS); without it the managed keys cannot be opened\n')
    })

  backup
    .command('verify')
    .description('restore drill: decrypt, check the MAC under the master key and the hashes, restore into a temporary store, check integrity and row counts; exit 1 on any problem')
    .argument('<archive>', 'a rekey-backup-*.tgz.age file')
    .option('--identity <file>', 'age identity file, for archives made with --recipient')
    .action(async (archive: string, options: { identity?: string }, command: Command) => {
      const globals = command.optsWithGlobals<GlobalOptions>()
      const identities = options.identity === undefined ? [] : await readIdentities(options.identity)
      const started = Date.now()
      const config = await commandConfig(io, globals)
      const location = config.store
      const masterKey = (await resolveMasterKey(config)).key
      const { verifyBackup } = await import('../../ops/backup/backup.ts')
      await removeLeftoversOf(io, location)
      const report = await runInterruptible(io, globals.json === true, () => verifyBackup(archive, { passphrase: io.env.REKEY_BACKUP_PASSPHRASE, identities }, masterKey, location))
      const m = report.manifest
      const result = { archive, ok: true, dialect: m.dialect, schemaVersion: m.schemaVersion, createdAt: m.createdAt, rekeyVersion: m.rekeyVersion, tables: report.tables, rows: report.rows, ms: Date.now() - started }
      if (globals.json === true) {
        io.stdout(`${JSON.stringify(result)}\n`)
        return
      }
      io.stdout(`backup ok: ${archive}\n`)
      io.stdout(`  made ${m.createdAt} by rekey ${m.rekeyVersion}; ${m.dialect}, schema version ${m.schemaVersion}\n`)
      io.stdout(`  authentic (MAC under master key k:${m.masterKeyId}), decrypted, hashes match, only rekey's own schema, restored into a temporary store: integrity ok, ${report.rows} rows in ${report.tables} tables as the manifest says (${result.ms} ms)\n`)
    })
}
