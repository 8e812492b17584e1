import type { Command } from 'commander'
import { planRollback } from '../../core/env-rotation.ts'
import { applyEnvPlan } from '../env-mode.ts'
import { isDataKeySecret, rollbackManagedDataKey } from '../data-key.ts'
import type { CliIo, GlobalOptions } from '../context.ts'
import { managedSecretOf, printReport, withManaged } from '../managed.ts'

/** `rekey rollback`: the previous key signs again while it still exists. */
export function registerRollback(program: Command, io: CliIo): void {
  program
    .command('rollback')
    .description('the previous key signs again (while it still exists); the newer one verifies until finalize')
    .option('--secret <name>', 'env-file: access, refresh, all, ENCRYPTION_KEY, or (default) the JWT_SECRET family; managed: access, refresh, all (default) or ENCRYPTION_KEY')
    .addHelpText('after', '\nExamples:\n  rekey --env .env rollback\n  rekey rollback --secret access      # managed')
    .action(async (options: { secret?: string }, command: Command) => {
      const globals = command.optsWithGlobals<GlobalOptions>()
      if (isDataKeySecret(options.secret) && globals.envFile === undefined) return await rollbackManagedDataKey(io, globals)
      if (globals.envFile !== undefined) {
        await applyEnvPlan(io, globals, options.secret, (vars, layout) => planRollback(vars, layout, new Date()))
        return
      }
      const secret = managedSecretOf(options.secret)
      const report = await withManaged(io, globals, (ctx) => ctx.rotation.rollback({ actor: ctx.actor, ...(secret === undefined ? {} : { secret }) }))
      printReport(io, globals, report, () => [
        ...report.changes.map((c) => `${c.purpose} key ${c.kid}: ${c.from} → ${c.to}`),
        `key-set version ${report.keysetVersion}`,
      ])
    })
}
