import type { Command } from 'commander'
import { planRollback } from '../../core/env-rotation.ts'
import { applyEnvPlan, requireEnvFile } from '../env-mode.ts'
import type { CliIo, GlobalOptions } from '../context.ts'

/** `rekey rollback`: the previous key signs again while it still exists. */
export function registerRollback(program: Command, io: CliIo): void {
  program
    .command('rollback')
    .description('the previous key signs again (while it still exists); the newer one verifies until finalize')
    .option('--secret <name>', 'access, refresh, or (default) the JWT_SECRET family')
    .addHelpText('after', '\nExample:\n  rekey --env-file .env rollback')
    .action(async (options: { secret?: string }, command: Command) => {
      const globals = command.optsWithGlobals<GlobalOptions>()
      requireEnvFile(globals, 'rollback')
      await applyEnvPlan(io, globals, options.secret, (vars, layout) => planRollback(vars, layout, new Date()))
    })
}
