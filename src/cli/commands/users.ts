import type { Command } from 'commander'
import { normalizeEmail } from '../../service/auth/credentials.ts'
import { forcePasswordReset } from '../../service/auth/force-reset.ts'
import { CliExit, EXIT, type CliIo, type GlobalOptions } from '../context.ts'
import { printReport, withManaged } from '../managed.ts'

interface ForceResetOptions {
  email?: string
  all?: boolean
}

/**
 * `rekey users force-reset (--email E | --all)`: the next login of those users can only set a
 * new password; their sessions and access tokens end now. Recorded in the audit log.
 */
export function registerUsers(program: Command, io: CliIo): void {
  const users = program.command('users').description('users of the auth service')
  users
    .command('force-reset')
    .description('make users set a new password at their next login (their sessions end now)')
    .option('--email <email>', 'one user')
    .option('--all', 'every user (after a leak of the auth key or the password database)')
    .addHelpText('after', '\nExamples:\n  rekey users force-reset --email ops@example.com\n  rekey --operator alice users force-reset --all')
    .action(async (options: ForceResetOptions, command: Command) => {
      const globals = command.optsWithGlobals<GlobalOptions & ForceResetOptions>()
      if (globals.envFile !== undefined) throw new CliExit(EXIT.USAGE, 'rekey users acts on the store of rekey serve: leave out --env-file')
      if ((options.email === undefined) === (options.all !== true)) throw new CliExit(EXIT.USAGE, 'give exactly one of --email E or --all')
      const email = options.email === undefined ? null : normalizeEmail(options.email)
      if (options.email !== undefined && email === null) throw new CliExit(EXIT.USAGE, '--email must be an email address')
      const report = await withManaged(io, globals, async ({ store, audit, actor }) => {
        const done = await forcePasswordReset(store, audit.hash, { email, operator: actor.operator, now: Date.now() })
        if (email !== null && done.users === 0) throw new CliExit(EXIT.USAGE, 'no user has that email')
        return done
      })
      printReport(io, globals, report, () => [
        `${report.users} user${report.users === 1 ? '' : 's'} must set a new password at next login; ${report.sessionsEnded} session${report.sessionsEnded === 1 ? '' : 's'} ended`,
      ])
    })
}
