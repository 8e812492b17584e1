import type { Command } from 'commander'
import { planFinalize } from '../../core/env-rotation.ts'
import { applyEnvPlan } from '../env-mode.ts'
import { finalizeManagedDataKey, guardDataKeyFinalize, isDataKeySecret } from '../data-key.ts'
import { CliExit, EXIT, type CliIo, type GlobalOptions } from '../context.ts'
import { managedSecretOf, printReport, withManaged } from '../managed.ts'
import { addSmokeOptions, smokeFailure, smokePlanOf, type SmokeFlags } from '../smoke-guard.ts'
import { finalizeDbCommand, isDbSecret } from './rotate-db.ts'
import { SettingProblem, shareThreshold } from '../../config/schema.ts'
import { envFinalizeEvidence, withEnvEvidence } from '../env-evidence.ts'

/** `--when-share-below 5%` as a fraction. */
function thresholdOf(value: string | undefined): number | undefined {
  if (value === undefined) return undefined
  try {
    return shareThreshold(value)
  } catch (err) {
    if (err instanceof SettingProblem) throw new CliExit(EXIT.USAGE, `--when-share-below ${err.message}`)
    throw err
  }
}

/** `rekey finalize`: the old key stops verifying, refused while its tokens may be live. */
export function registerFinalize(program: Command, io: CliIo): void {
  addSmokeOptions(program
    .command('finalize')
    .description('end the grace window: the old key stops verifying (refused, exit 1, while its tokens can be live)')
    .option('--secret <name>', 'env-file: access, refresh, all, ENCRYPTION_KEY, or (default) the JWT_SECRET family; managed: access, refresh, all (default) or ENCRYPTION_KEY')
    .option('--force', 'finalize now even though tokens signed by the old key may still be live or were verified in the last 5 min')
    .option('--when-share-below <percent>', 'finalize before the grace window ends once the old key\'s share of verifications, across every reporting process, has stayed below this (e.g. 5%) for 15 minutes')
    .option('--token-lifetime <duration>', 'env-file: the app\'s token lifetime when the file does not say (default: JWT_EXPIRATION, else 24h assumed)')
    .option('--shred-backups', 'env-file: remove the backups that still hold the retired key'))
    .addHelpText('after', '\nExamples:\n  rekey --env .env finalize\n  rekey --env .env finalize --force\n  rekey --env .env finalize --token-lifetime 1h --shred-backups\n  rekey finalize --secret refresh     # managed: refused while live sessions hold its tokens\n  rekey finalize --when-share-below 5%   # once 95 % of verifications use the new key, for 15 min\n  rekey finalize --smoke https://auth.example.com --smoke-email smoke@example.com --smoke-password-env SMOKE_PASSWORD\n\nFinalize cannot be undone: with --smoke the smoke test runs first, and a failure (exit 1) leaves the keys as they are.')
    .action(async (options: { secret?: string, force?: boolean, whenShareBelow?: string, tokenLifetime?: string, shredBackups?: boolean } & SmokeFlags, command: Command) => {
      const globals = command.optsWithGlobals<GlobalOptions>()
      if (isDbSecret(options.secret)) return await finalizeDbCommand(io, globals, options)
      const whenShareBelow = thresholdOf(options.whenShareBelow)
      if (isDataKeySecret(options.secret) && globals.envFile === undefined) {
        if (whenShareBelow !== undefined) throw new CliExit(EXIT.USAGE, '--when-share-below weighs token verifications; ENCRYPTION_KEY is finalized on its column counts (rekey rewrap)')
        return await finalizeManagedDataKey(io, globals, { force: options.force === true })
      }
      if (isDataKeySecret(options.secret)) await guardDataKeyFinalize(io, globals, options.force === true)
      if (globals.envFile !== undefined) {
        // Apps that report usage to the store beside the file are the evidence (see env-evidence.ts).
        const evidence = await envFinalizeEvidence(io, globals, options.secret, whenShareBelow)
        await applyEnvPlan(io, globals, options.secret, (vars, layout, _fresh, lifetime) =>
          withEnvEvidence(evidence, options.force === true, whenShareBelow, (force) => planFinalize(vars, layout, new Date(), force, lifetime)), {
          ...(options.tokenLifetime === undefined ? {} : { tokenLifetime: options.tokenLifetime }),
          shredBackups: options.shredBackups === true,
        })
        return
      }
      const secret = managedSecretOf(options.secret)
      const smoke = smokePlanOf(options, io)
      const report = await withManaged(io, globals, async (ctx) => {
        const result = smoke === null ? null : await smoke()
        if (result !== null && !result.ok) {
          throw new CliExit(EXIT.REFUSED, `${smokeFailure(result)}: finalize did not run, the previous keys still verify (if the new key is at fault: rekey rollback)`)
        }
        return ctx.rotation.finalize({
          actor: ctx.actor, force: options.force === true,
          ...(whenShareBelow === undefined ? {} : { whenShareBelow }),
          ...(secret === undefined ? {} : { secret }),
        })
      })
      printReport(io, globals, report, () => report.changed
        ? [
            ...report.retired.map((k) => `retired ${k.purpose} key ${k.kid}`),
            ...(report.forced ? ['forced: tokens signed by these keys may still have been live and are now refused'] : []),
            ...(report.byShare === true ? [`on usage evidence: ${report.evidence?.share.map((s) => s.evidence?.reason).join('; ')}; it cut ${report.cut ?? 0} token(s) verified in the last 5 min`] : []),
          ]
        : ['nothing to do: no previous key is in its grace window'])
    })
}
