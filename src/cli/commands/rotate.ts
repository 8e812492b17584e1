import type { Command } from 'commander'
import { planRotate } from '../../core/env-rotation.ts'
import { DEFAULT_ROTATE_TIMEOUT_MS } from '../../service/lifecycle.ts'
import { applyEnvPlan } from '../env-mode.ts'
import { guardDataKeyRotate, isDataKeySecret } from '../data-key.ts'
import { CliExit, describeError, EXIT, type CliIo, type GlobalOptions } from '../context.ts'
import { managedSecretOf, printReport, timeoutOf, withManaged } from '../managed.ts'
import { addSmokeOptions, smokeFailure, smokePlanOf, type SmokeFlags } from '../smoke-guard.ts'
import { rotateMasterKeyCommand } from './rotate-master-key.ts'

interface RotateOptions extends SmokeFlags {
  secret?: string
  hard?: boolean
  timeout?: string
}

/**
 * `rekey rotate`: the new key signs, the old one verifies until finalize; `--hard` drops it now.
 * Managed mode stages the key, waits until every live instance has loaded it, then promotes it.
 */
export function registerRotate(program: Command, io: CliIo): void {
  addSmokeOptions(program
    .command('rotate')
    .description('graceful rotation: a new key signs, the old one verifies until finalize')
    .option('--secret <name>', 'env-file: access, refresh, or (default) the JWT_SECRET family; managed: access, refresh or all (default)')
    .option('--hard', 'drop the old key now: every token it signed is refused (forces re-login)')
    .option('--timeout <duration>', 'managed: how long to wait for every running instance to load the new key (default 30s)'))
    .addHelpText('after', [
      '',
      'Examples:',
      '  rekey --env-file .env rotate',
      '  rekey --env-file .env rotate --secret refresh --hard',
      '  rekey rotate                       # managed: the keys in ./.rekey/rekey.db',
      '  rekey --store postgres://rekey@db/rekey rotate --secret access --timeout 10s',
      '  rekey rotate --smoke https://auth.example.com --smoke-email smoke@example.com --smoke-password-env SMOKE_PASSWORD',
      '  REKEY_MASTER_KEY=<new> REKEY_MASTER_KEY_PREV=<old> rekey rotate --secret master-key',
      '  rekey --env-file .env rotate --secret ENCRYPTION_KEY   # data key: then rekey rewrap, then finalize (docs/crypt.md)',
      '',
      'With --smoke, a failed smoke test after the rotation rolls it back (exit 1, naming the failed step).',
      '',
      'Managed mode exits 1 when the timeout passes before every live instance has the new key:',
      'the key stays staged (next) and verifies; run rekey rotate again to finish the rotation.',
    ].join('\n'))
    .action(async (options: RotateOptions, command: Command) => {
      const globals = command.optsWithGlobals<GlobalOptions>()
      if (options.secret === 'master-key') return await rotateMasterKeyCommand(io, globals)
      if (isDataKeySecret(options.secret)) await guardDataKeyRotate(io, globals, options.hard === true)
      if (globals.envFile !== undefined) {
        await applyEnvPlan(io, globals, options.secret, (vars, layout, fresh) => planRotate(vars, layout, fresh(), new Date(), options.hard === true))
        return
      }
      const secret = managedSecretOf(options.secret)
      const timeoutMs = timeoutOf(options.timeout, DEFAULT_ROTATE_TIMEOUT_MS)
      const smoke = smokePlanOf(options, io)
      if (smoke !== null && options.hard === true) throw new CliExit(EXIT.USAGE, '--smoke cannot guard --hard: a hard rotation revokes the old key, so it cannot be rolled back')
      const { report, guard } = await withManaged(io, globals, async (ctx) => {
        const report = await ctx.lifecycle.rotate({ actor: ctx.actor, hard: options.hard === true, timeoutMs, ...(secret === undefined ? {} : { secret }) })
        if (smoke === null || !report.promoted) return { report, guard: null }
        const result = await smoke()
        if (result.ok) return { report, guard: { smoke: result, rolledBack: null } }
        try {
          return { report, guard: { smoke: result, rolledBack: await ctx.lifecycle.rollback({ actor: ctx.actor, ...(secret === undefined ? {} : { secret }) }) } }
        } catch (err) {
          throw new CliExit(EXIT.REFUSED, `${smokeFailure(result)}; the rollback failed (${describeError(err)}): run rekey rollback`)
        }
      })
      printReport(io, globals, guard === null ? report : { ...report, ...guard }, () => [
        ...report.staged.map((s) => `${s.resumed ? 'resumed' : 'staged'} ${s.purpose} key ${s.kid}`),
        `instances: ${report.instances.length === 0 ? 'none running' : report.instances.map((i) => `${i.instanceId} v${i.keysetVersion}${i.acknowledged ? ' ✓' : ' (waiting)'}`).join(', ')}`,
        ...report.changes.map((c) => `  ${c.purpose} key ${c.kid}: ${c.from} → ${c.to}`),
        ...(report.signingEverywhere ? [`the new key signs everywhere (key-set version ${report.keysetVersion}, ${report.waitedMs} ms)`] : []),
        ...(report.finalizeSafeAt === null || guard?.rolledBack != null ? [] : [`finalize is safe from ${report.finalizeSafeAt}`]),
        ...(guard === null ? [] : [guard.smoke.ok ? 'smoke test passed' : `${smokeFailure(guard.smoke)}: rolled back`]),
      ])
      if (guard?.rolledBack != null) {
        throw new CliExit(EXIT.REFUSED, `${smokeFailure(guard.smoke)}: the rotation was rolled back (${guard.rolledBack.changes.map((c) => `${c.purpose} key ${c.kid} ${c.from} → ${c.to}`).join('; ')})`)
      }
      if (report.promoted && !report.signingEverywhere) {
        const pending = report.instances.filter((i) => !i.acknowledged).map((i) => i.instanceId)
        throw new CliExit(EXIT.REFUSED, `promoted, but ${pending.length} instance(s) had not loaded key-set version ${report.keysetVersion} before the timeout (${pending.join(', ')}); they keep signing with the old key, which still verifies, until they do`)
      }
      if (!report.promoted) {
        const pending = report.instances.filter((i) => !i.acknowledged).map((i) => i.instanceId)
        throw new CliExit(EXIT.REFUSED, `timed out after ${Math.round(report.waitedMs / 1000)} s waiting for ${pending.length} instance(s) to load key-set version ${report.keysetVersion} (${pending.join(', ')}); the new key stays staged as next: run rekey rotate again to finish`)
      }
    })
}
