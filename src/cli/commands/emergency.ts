import type { Command } from 'commander'
import type { EmergencyReport } from '../../service/keys/rotation-report.ts'
import type { SweepProgress } from '../../service/sessions/session-maintenance.ts'
import { planRotate } from '../../core/env-rotation.ts'
import { maskSecrets } from '../../core/mask.ts'
import type { CliIo, GlobalOptions } from '../context.ts'
import { applyEnvPlan } from '../env-mode.ts'
import { managedSecretOf, printReport, withManaged } from '../managed.ts'

/** What an operator must still do after an env-file emergency: rekey cannot reach the app. */
export const ENV_EMERGENCY_FOLLOW_UP: readonly string[] = Object.freeze([
  'still to do:',
  '  1. reload or restart the app now, everywhere it runs: until it reads the file again it keeps the old secrets',
  '  2. if the app keeps refresh tokens or sessions (a database, Redis), revoke them all there: a new secret does not end stored sessions',
  '  3. if an auth key leaked with it (a password hash store, DATABASE_URL, an API key), rotate that too and force password resets',
])

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
    .option('--shred-backups', 'env-file: remove the backups that still hold a revoked secret')
    .addHelpText('after', '\nExamples:\n  rekey emergency --reason "JWT secret pushed to a public repo"\n  rekey --json emergency --secret refresh --reason "refresh key leaked"\n  rekey --env .env emergency --reason "JWT secret pushed to a public repo" --shred-backups\n\nIt acts at once: every user signs in again. In env-file mode it hard-rotates every JWT secret\nof the file in one write (one audit row per secret, the webhook notice) and prints what is\nstill to do.')
    .action(async (options: { secret?: string, reason?: string, shredBackups?: boolean }, command: Command) => {
      const globals = command.optsWithGlobals<GlobalOptions>()
      if (globals.envFile !== undefined) {
        const reason = options.reason === undefined || options.reason.trim() === '' ? 'not given' : maskSecrets(options.reason.trim())
        await applyEnvPlan(io, globals, options.secret ?? 'all', (vars, layout, fresh) => {
          const plan = planRotate(vars, layout, fresh(), new Date(), true)
          return { ...plan, method: 'emergency', notes: 'hard rotation: the old key is revoked, every token it signed is refused' }
        }, { notice: 'emergency', reason, followUp: ENV_EMERGENCY_FOLLOW_UP, shredBackups: options.shredBackups === true })
        return
      }
      const secret = managedSecretOf(options.secret)
      // Progress of the session sweep on stderr (at most once a second, and when done), so
      // stdout stays the report; the keys and the not-before are committed before it starts.
      let lastLine = 0
      const onProgress = (p: SweepProgress): void => {
        if (!p.done && Date.now() - lastLine < 1000) return
        lastLine = Date.now()
        const rate = p.elapsedMs > 0 ? Math.round((p.ended / p.elapsedMs) * 1000) : p.ended
        io.stderr(`emergency: keys and not-before committed; ${p.ended} session(s) ended${p.done ? ', done' : ' so far'} (${p.batches} batch(es), ${rate}/s)\n`)
      }
      const report = await withManaged(io, globals, (ctx) => ctx.rotation.emergency({
        actor: ctx.actor, reason: options.reason ?? '', onProgress, ...(secret === undefined ? {} : { secret }),
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
