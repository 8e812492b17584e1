import type { Command } from 'commander'
import { planFinalize } from '../../core/env-rotation.ts'
import { applyEnvPlan, requireEnvFile } from '../env-mode.ts'
import type { CliIo, GlobalOptions } from '../context.ts'

/** `rekey finalize`: the old key stops verifying, refused while its tokens may be live. */
export function registerFinalize(program: Command, io: CliIo): void {
  program
    .command('finalize')
    .description('end the grace window: the old key stops verifying (refused, exit 1, while its tokens can be live)')
    .option('--secret <name>', 'access, refresh, or (default) the JWT_SECRET family')
    .option('--force', 'finalize now even though tokens signed by the old key may still be live')
    .addHelpText('after', '\nExamples:\n  rekey --env-file .env finalize\n  rekey --env-file .env finalize --force')
    .action(async (options: { secret?: string, force?: boolean }, command: Command) => {
      const globals = command.optsWithGlobals<GlobalOptions>()
      requireEnvFile(globals, 'finalize')
      await applyEnvPlan(io, globals, options.secret, (vars, layout) => planFinalize(vars, layout, new Date(), options.force === true))
    })
}
