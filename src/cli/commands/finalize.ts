import type { Command } from 'commander'
import { planFinalize } from '../../core/env-rotation.ts'
import { applyEnvPlan } from '../env-mode.ts'
import { guardDataKeyFinalize, isDataKeySecret } from '../data-key.ts'
import { CliExit, EXIT, type CliIo, type GlobalOptions } from '../context.ts'
import { managedSecretOf, printReport, withManaged } from '../managed.ts'
import { addSmokeOptions, smokeFailure, smokePlanOf, type SmokeFlags } from '../smoke-guard.ts'
import { finalizeDbCommand, isDbSecret } from './rotate-db.ts'

/** `rekey finalize`: the old key stops verifying, refused while its tokens may be live. */
export function registerFinalize(program: Command, io: CliIo): void {
  addSmokeOptions(program
    .command('finalize')
    .description('end the grace window: the old key stops verifying (refused, exit 1, while its tokens can be live)')
    .option('--secret <name>', 'env-file: access, refresh, or (default) the JWT_SECRET family; managed: access, refresh or all (default)')
    .option('--force', 'finalize now even though tokens signed by the old key may still be live'))
    .addHelpText('after', '\nExamples:\n  rekey --env-file .env finalize\n  rekey --env-file .env finalize --force\n  rekey finalize --secret refresh     # managed: refused while live sessions hold its tokens\n  rekey finalize --smoke https://auth.example.com --smoke-email smoke@example.com --smoke-password-env SMOKE_PASSWORD\n\nFinalize cannot be undone: with --smoke the smoke test runs first, and a failure (exit 1) leaves the keys as they are.')
    .action(async (options: { secret?: string, force?: boolean } & SmokeFlags, command: Command) => {
      const globals = command.optsWithGlobals<GlobalOptions>()
      if (isDbSecret(options.secret)) return await finalizeDbCommand(io, globals, options)
      if (isDataKeySecret(options.secret)) await guardDataKeyFinalize(io, globals, options.force === true)
      if (globals.envFile !== undefined) {
        await applyEnvPlan(io, globals, options.secret, (vars, layout) => planFinalize(vars, layout, new Date(), options.force === true))
        return
      }
      const secret = managedSecretOf(options.secret)
      const smoke = smokePlanOf(options, io)
      const report = await withManaged(io, globals, async (ctx) => {
        const result = smoke === null ? null : await smoke()
        if (result !== null && !result.ok) {
          throw new CliExit(EXIT.REFUSED, `${smokeFailure(result)}: finalize did not run, the previous keys still verify (if the new key is at fault: rekey rollback)`)
        }
        return ctx.lifecycle.finalize({ actor: ctx.actor, force: options.force === true, ...(secret === undefined ? {} : { secret }) })
      })
      printReport(io, globals, report, () => report.changed
        ? [
            ...report.retired.map((k) => `retired ${k.purpose} key ${k.kid}`),
            ...(report.forced ? ['forced: tokens signed by these keys may still have been live and are now refused'] : []),
          ]
        : ['nothing to do: no previous key is in its grace window'])
    })
}
