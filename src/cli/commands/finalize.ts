import type { Command } from 'commander'
import { planFinalize } from '../../core/env-rotation.ts'
import { applyEnvPlan } from '../env-mode.ts'
import type { CliIo, GlobalOptions } from '../context.ts'
import { managedSecretOf, printReport, withManaged } from '../managed.ts'
import { finalizeDbCommand, isDbSecret } from './rotate-db.ts'

/** `rekey finalize`: the old key stops verifying, refused while its tokens may be live. */
export function registerFinalize(program: Command, io: CliIo): void {
  program
    .command('finalize')
    .description('end the grace window: the old key stops verifying (refused, exit 1, while its tokens can be live)')
    .option('--secret <name>', 'env-file: access, refresh, or (default) the JWT_SECRET family; managed: access, refresh or all (default)')
    .option('--force', 'finalize now even though tokens signed by the old key may still be live')
    .addHelpText('after', '\nExamples:\n  rekey --env-file .env finalize\n  rekey --env-file .env finalize --force\n  rekey finalize --secret refresh     # managed: refused while live sessions hold its tokens')
    .action(async (options: { secret?: string, force?: boolean }, command: Command) => {
      const globals = command.optsWithGlobals<GlobalOptions>()
      if (isDbSecret(options.secret)) return await finalizeDbCommand(io, globals, options)
      if (globals.envFile !== undefined) {
        await applyEnvPlan(io, globals, options.secret, (vars, layout) => planFinalize(vars, layout, new Date(), options.force === true))
        return
      }
      const secret = managedSecretOf(options.secret)
      const report = await withManaged(io, globals, (ctx) => ctx.lifecycle.finalize({
        actor: ctx.actor, force: options.force === true, ...(secret === undefined ? {} : { secret }),
      }))
      printReport(io, globals, report, () => report.changed
        ? [
            ...report.retired.map((k) => `retired ${k.purpose} key ${k.kid}`),
            ...(report.forced ? ['forced: tokens signed by these keys may still have been live and are now refused'] : []),
          ]
        : ['nothing to do: no previous key is in its grace window'])
    })
}
