import type { Command } from 'commander'
import { planRotate } from '../../core/env-rotation.ts'
import { DEFAULT_ROTATE_TIMEOUT_MS } from '../../service/lifecycle.ts'
import { applyEnvPlan } from '../env-mode.ts'
import { CliExit, EXIT, type CliIo, type GlobalOptions } from '../context.ts'
import { managedSecretOf, printReport, timeoutOf, withManaged } from '../managed.ts'

interface RotateOptions {
  secret?: string
  hard?: boolean
  timeout?: string
}

/**
 * `rekey rotate`: the new key signs, the old one verifies until finalize; `--hard` drops it now.
 * Managed mode stages the key, waits until every live instance has loaded it, then promotes it.
 */
export function registerRotate(program: Command, io: CliIo): void {
  program
    .command('rotate')
    .description('graceful rotation: a new key signs, the old one verifies until finalize')
    .option('--secret <name>', 'env-file: access, refresh, or (default) the JWT_SECRET family; managed: access, refresh or all (default)')
    .option('--hard', 'drop the old key now: every token it signed is refused (forces re-login)')
    .option('--timeout <duration>', 'managed: how long to wait for every running instance to load the new key (default 30s)')
    .addHelpText('after', [
      '',
      'Examples:',
      '  rekey --env-file .env rotate',
      '  rekey --env-file .env rotate --secret refresh --hard',
      '  rekey rotate                       # managed: the keys in ./.rekey/rekey.db',
      '  rekey --store postgres://rekey@db/rekey rotate --secret access --timeout 10s',
      '',
      'Managed mode exits 1 when the timeout passes before every live instance has the new key:',
      'the key stays staged (next) and verifies; run rekey rotate again to finish the rotation.',
    ].join('\n'))
    .action(async (options: RotateOptions, command: Command) => {
      const globals = command.optsWithGlobals<GlobalOptions>()
      if (globals.envFile !== undefined) {
        await applyEnvPlan(io, globals, options.secret, (vars, layout, fresh) => planRotate(vars, layout, fresh(), new Date(), options.hard === true))
        return
      }
      const secret = managedSecretOf(options.secret)
      const timeoutMs = timeoutOf(options.timeout, DEFAULT_ROTATE_TIMEOUT_MS)
      const report = await withManaged(io, globals, (ctx) => ctx.lifecycle.rotate({
        actor: ctx.actor, hard: options.hard === true, timeoutMs, ...(secret === undefined ? {} : { secret }),
      }))
      printReport(io, globals, report, () => [
        ...report.staged.map((s) => `${s.resumed ? 'resumed' : 'staged'} ${s.purpose} key ${s.kid}`),
        `instances: ${report.instances.length === 0 ? 'none running' : report.instances.map((i) => `${i.instanceId} v${i.keysetVersion}${i.acknowledged ? ' ✓' : ' (waiting)'}`).join(', ')}`,
        ...report.changes.map((c) => `  ${c.purpose} key ${c.kid}: ${c.from} → ${c.to}`),
        ...(report.signingEverywhere ? [`the new key signs everywhere (key-set version ${report.keysetVersion}, ${report.waitedMs} ms)`] : []),
        ...(report.finalizeSafeAt === null ? [] : [`finalize is safe from ${report.finalizeSafeAt}`]),
      ])
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
