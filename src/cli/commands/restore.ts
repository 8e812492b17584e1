import type { Command } from 'commander'
import { maskLocation } from '../../store/errors.ts'
import { resolveMasterKey } from '../../config/master-key.ts'
import { commandConfig } from '../audit-store.ts'
import { operatorOf, type CliIo, type GlobalOptions } from '../context.ts'
import { removeLeftoversOf, runInterruptible } from '../interruptible.ts'
import type { RestoredMasterKey } from '../../ops/backup/master-key-beside.ts'
import { readIdentities } from './backup.ts'

/** What the restored store needs, said last: the key's id and the `master.key` beside it, never a key. */
function masterKeyLines(key: RestoredMasterKey): string {
  const needs = `  the restored store needs master key k:${key.id} (the one this restore was given, under which the archive is authentic)`
  switch (key.file.state) {
    case 'matches': return `${needs}; ${key.file.file} holds it`
    case 'replaced': return `${needs}; ${key.file.file} held another key, so it now holds this one (0600); the previous one is kept as ${key.file.kept} (0600), the key of the replaced store`
    case 'absent': return `${needs}; there is no ${key.file.file}: every command and rekey serve need REKEY_MASTER_KEY set to it`
    case 'none': return `${needs}; every instance's REKEY_MASTER_KEY must be it`
  }
}

/** `rekey restore ARCHIVE`: the drill, then the store is replaced; a store with data only with --force. */
export function registerRestore(program: Command, io: CliIo): void {
  program
    .command('restore')
    .description('restore the store from an authentic backup after a full drill; refused while any instance runs on the store; a store holding data is only replaced with --force, and its revoked keys, ended sessions, not-before, users\' password/role/token state and later audit rows are kept')
    .argument('<archive>', 'a rekey-backup-*.tgz.age file')
    .option('--identity <file>', 'age identity file, for archives made with --recipient')
    .option('--force', 'replace a store that holds data (never a store an instance is running on); what it revoked stays revoked')
    .addHelpText('after', '\nExamples:\n  REKEY_BACKUP_PASSPHRASE=... rekey restore backups/rekey-backup-20261123T021700Z.tgz.age\n  rekey --store ./.rekey/rekey.db restore backup.tgz.age --identity ops.agekey --force')
    .action(async (archive: string, options: { identity?: string, force?: boolean }, command: Command) => {
      const globals = command.optsWithGlobals<GlobalOptions>()
      const identities = options.identity === undefined ? [] : await readIdentities(options.identity)
      const config = await commandConfig(io, globals)
      const location = config.store
      // The archive must be authentic under the master key the restored store will run with.
      const masterKey = (await resolveMasterKey(config)).key
      const { restoreBackup } = await import('../../ops/backup/backup.ts')
      const { describeKeptCuts } = await import('../../ops/backup/keep-revocations.ts')
      const { describeUserCarry } = await import('../../ops/backup/keep-users.ts')
      const { describeAuditCarry } = await import('../../ops/backup/keep-audit.ts')
      await removeLeftoversOf(io, location)
      const report = await runInterruptible(io, globals.json === true, () => restoreBackup(archive, { passphrase: io.env.REKEY_BACKUP_PASSPHRASE, identities }, location, masterKey, {
        force: options.force === true, operator: operatorOf(globals), previousMasterKey: config.masterKeyPrev?.reveal(),
      }))
      const m = report.manifest
      const kept = report.keptState
      const cuts = describeKeptCuts(kept.cuts)
      const users = describeUserCarry(kept.users)
      const audit = describeAuditCarry(kept.audit)
      // Said even with --json: the operator asked for a state the replaced store had moved past.
      if (report.unreadCuts !== null) io.stderr(`rekey: warning: ${report.unreadCuts}\n`)
      if (cuts !== null) io.stderr(`rekey: warning: the backup (made ${m.createdAt}) predates revocations of the replaced store, which it would have brought back: ${cuts}\n`)
      if (users !== null) io.stderr(`rekey: warning: the replaced store's users changed after the backup, kept: ${users}\n`)
      if (audit !== null) io.stderr(`rekey: warning: the replaced store's audit log: ${audit}\n`)
      if (globals.json === true) {
        io.stdout(`${JSON.stringify({ archive, store: maskLocation(location), restored: true, dialect: m.dialect, createdAt: m.createdAt, rows: report.rows, tables: report.tables, kept: report.kept, keptRevocations: kept.cuts, keptUsers: kept.users, audit: kept.audit, masterKeyId: report.masterKey.id, masterKeyFile: report.masterKey.file })}\n`)
        return
      }
      io.stdout(`restored ${maskLocation(location)} from ${archive} (made ${m.createdAt}): ${report.rows} rows in ${report.tables} tables\n`)
      if (report.kept !== null) io.stdout(`  the replaced store is kept as ${report.kept} (0600); delete it once the restore is confirmed\n`)
      io.stdout(`${masterKeyLines(report.masterKey)}\n`)
    })
}
