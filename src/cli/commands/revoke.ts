import type { Command } from 'commander'
import { ServiceError } from '../../service/errors.ts'
import { CliExit, EXIT, type CliIo, type GlobalOptions } from '../context.ts'
import { printReport, withManaged } from '../managed.ts'

/** `rekey revoke KID`: that key stops verifying at once on every instance (managed mode). */
export function registerRevoke(program: Command, io: CliIo): void {
  program
    .command('revoke')
    .argument('<kid>', 'the kid of the key (see rekey status)')
    .description('that key stops verifying at once, everywhere (the current key is refused: use emergency or rotate --hard)')
    .option('--reason <text>', 'why, for the audit log')
    .addHelpText('after', '\nExamples:\n  rekey revoke 3f1c9a0b2d4e5f60\n  rekey --operator alice revoke 3f1c9a0b2d4e5f60 --reason "found in a log"')
    .action(async (kid: string, options: { reason?: string }, command: Command) => {
      const globals = command.optsWithGlobals<GlobalOptions>()
      if (globals.envFile !== undefined) throw new CliExit(EXIT.USAGE, 'rekey revoke acts on managed keys: leave out --env-file (in a .env file, rotate --hard drops the old key)')
      const report = await withManaged(io, globals, async (ctx) => {
        try {
          return await ctx.rotation.revoke({ actor: ctx.actor, kid, ...(options.reason === undefined ? {} : { reason: options.reason }) })
        } catch (err) {
          if (err instanceof ServiceError && err.code === 'not_found') throw new CliExit(EXIT.USAGE, 'no key of this store has that kid (see rekey status)')
          throw err
        }
      })
      printReport(io, globals, report, () => report.changed
        ? report.changes.map((c) => `revoked ${c.purpose} key ${c.kid} (was ${c.from}); every instance refuses its tokens from its next reload`)
        : [`${kid} was already revoked`])
    })
}
