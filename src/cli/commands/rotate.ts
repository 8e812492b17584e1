import type { Command } from 'commander'
import { planRotate } from '../../core/env-rotation.ts'
import { applyEnvPlan, requireEnvFile } from '../env-mode.ts'
import type { CliIo, GlobalOptions } from '../context.ts'

/** `rekey rotate`: the new key signs, the old one verifies until finalize; `--hard` drops it now. */
export function registerRotate(program: Command, io: CliIo): void {
  program
    .command('rotate')
    .description('graceful rotation: a new key signs, the old one verifies until finalize')
    .option('--secret <name>', 'access, refresh, or (default) the JWT_SECRET family')
    .option('--hard', 'drop the old key now: every token it signed is refused (forces re-login)')
    .addHelpText('after', '\nExamples:\n  rekey --env-file .env rotate\n  rekey --env-file .env rotate --secret refresh\n  rekey --env-file .env rotate --hard')
    .action(async (options: { secret?: string, hard?: boolean }, command: Command) => {
      const globals = command.optsWithGlobals<GlobalOptions>()
      requireEnvFile(globals, 'rotate')
      await applyEnvPlan(io, globals, options.secret, (vars, layout, fresh) => planRotate(vars, layout, fresh(), new Date(), options.hard === true))
    })
}
