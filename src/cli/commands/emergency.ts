import type { Command } from 'commander'
import type { EmergencyReport } from '../../service/lifecycle.ts'
import { CliExit, EXIT, type CliIo, type GlobalOptions } from '../context.ts'
import { managedSecretOf, printReport, withManaged } from '../managed.ts'

/**
 * `rekey emergency`: compromise response. Acts at once, without a confirmation prompt (a
 * leak is no time for one): revoke the keys, issue new ones, end every session, refuse every
 * older token, and report where the revoked keys were used over the last 24 h.
 */
export function registerEmergency(program: Command, io: CliIo): void {
  program
    .command('emergency')
    .description('compromise response: revoke the keys, issue new ones, end every session, report recent use of the revoked keys')
    .option('--secret <name>', 'access, refresh or all (default)')
    .option('--reason <text>', 'why, for the audit log and the revoked keys')
    .addHelpText('after', '\nExamples:\n  rekey emergency --reason "JWT secret pushed to a public repo"\n  rekey --json emergency --secret refresh --reason "refresh key leaked"\n\nIt acts at once: every user signs in again.')
    .action(async (options: { secret?: string, reason?: string }, command: Command) => {
      const globals = command.optsWithGlobals<GlobalOptions>()
      if (globals.envFile !== undefined) throw new CliExit(EXIT.USAGE, 'rekey emergency acts on managed keys: leave out --env-file (in a .env file, use rotate --hard)')
      const secret = managedSecretOf(options.secret)
      const report = await withManaged(io, globals, (ctx) => ctx.lifecycle.emergency({
        actor: ctx.actor, reason: options.reason ?? '', ...(secret === undefined ? {} : { secret }),
      }))
      printReport(io, globals, report, () => lines(report))
    })
}

function lines(report: EmergencyReport): string[] {
  const out = [
    `revoked: ${report.revoked.map((k) => `${k.purpose} key ${k.kid}`).join(', ') || 'none'}`,
    `new keys: ${report.created.map((k) => `${k.purpose} ${k.kid}`).join(', ')}`,
    `sessions ended: ${report.sessionsEnded}; tokens issued before ${report.notBefore} are refused`,
    `instances: ${report.instances.length === 0 ? 'none running' : `${report.instances.filter((i) => i.upToDate).length}/${report.instances.length} have loaded the new keys`}`,
    ...(report.publishNotice == null ? [] : [`note: ${report.publishNotice}`]),
    'use of the revoked keys over the last 24 h:',
  ]
  if (report.usage.length === 0) out.push('  no verification recorded')
  for (const u of report.usage) out.push(`  ${u.kid}  instance ${u.instanceId}  ${u.result}: ${u.count}`)
  for (const s of report.sessionsSigned) out.push(`  ${s.kid} signed ${s.liveSessions} live session(s), now ended`)
  return out
}
