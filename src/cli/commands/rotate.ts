import type { Command } from 'commander'
import { planRotate } from '../../core/env-rotation.ts'
import { parseDuration } from '../../core/duration.ts'
import { DEFAULT_ROTATE_TIMEOUT_MS, type PublishProgress } from '../../service/keys/rotation.ts'
import { applyEnvPlan, presentSecrets } from '../env-mode.ts'
import { envFileVars } from '../audit-store.ts'
import { dataKeyFollowUp, guardDataKeyRotate, isDataKeySecret, rotateManagedDataKey } from '../data-key.ts'
import { CliExit, describeError, EXIT, type CliIo, type GlobalOptions } from '../context.ts'
import { managedSecretOf, printReport, timeoutOf, withManaged } from '../managed.ts'
import { addSmokeOptions, smokeFailure, smokePlanOf, type SmokeFlags } from '../smoke-guard.ts'
import { rotateMasterKeyCommand } from './rotate-master-key.ts'

interface RotateOptions extends SmokeFlags {
  secret?: string
  hard?: boolean
  timeout?: string
  convention?: string
  tokenLifetime?: string
  shredBackups?: boolean
  publishDelay?: string
  /** False with --no-wait. */
  wait?: boolean
}

/** `--publish-delay` as milliseconds (0 to 1 day), or undefined for REKEY_JWKS_MAX_AGE. */
function publishDelayOf(value: string | undefined): number | undefined {
  if (value === undefined) return undefined
  const seconds = parseDuration(value)
  if (seconds === undefined || seconds > 86_400) throw new CliExit(EXIT.USAGE, '--publish-delay must be a duration up to 1d, such as 0, 300 or 5m')
  return seconds * 1000
}

/** Progress on stderr while the publication delay runs: at the start, then every 30 s. */
function progressPrinter(io: CliIo): (p: PublishProgress) => void {
  let last = -1
  return (p) => {
    const step = Math.ceil(p.remainingMs / 30_000)
    if (step === last) return
    last = step
    io.stderr(`rekey: publishing ${p.kids.join(', ')} in the JWKS before it signs: ${Math.ceil(p.remainingMs / 1000)} s left (until ${p.until}; --no-wait returns now and the scheduler promotes)\n`)
  }
}

/**
 * `--secret refresh` on a file whose only JWT key is the generic one creates a first
 * JWT_REFRESH_SECRET. rekey's keyring never verifies refresh tokens with JWT_SECRET, but an
 * app with its own fallback (`JWT_REFRESH_SECRET ?? JWT_SECRET`) would switch keys at once: say so.
 */
async function warnFirstRefreshKey(io: CliIo, globals: GlobalOptions, secret: string | undefined): Promise<void> {
  if (secret !== 'refresh') return
  const present = presentSecrets(await envFileVars(globals))
  if (present.includes('refresh') || !present.includes('jwt')) return
  io.stderr(`rekey: warning: ${globals.envFile} has no JWT_REFRESH_SECRET: this creates a first one. rekey's keyring never verifies refresh tokens with JWT_SECRET, but if your app falls back to JWT_SECRET for them, every refresh token it issued stops verifying (the old file is kept as a backup)\n`)
}

/**
 * `rekey rotate`: the new key signs, the old one verifies until finalize; `--hard` drops it now.
 * Managed mode stages the key, waits until every live instance has loaded it, then promotes it.
 */
export function registerRotate(program: Command, io: CliIo): void {
  addSmokeOptions(program
    .command('rotate')
    .description('graceful rotation: a new key signs, the old one verifies until finalize')
    .option('--secret <name>', 'env-file: access, refresh, all, ENCRYPTION_KEY, or (default) the JWT_SECRET family; managed: access, refresh, all (default) or ENCRYPTION_KEY')
    .option('--hard', 'drop the old key now: every token it signed is refused (forces re-login)')
    .option('--convention <name>', 'env-file: pair (JWT_SECRET/JWT_SECRET_PREV) or current-new (JWT_SECRET_CURRENT/JWT_SECRET_NEW), remembered for the file')
    .option('--token-lifetime <duration>', 'env-file: the app\'s token lifetime when the file does not say (default: JWT_EXPIRATION, else 24h assumed)')
    .option('--shred-backups', 'env-file, with --hard: remove the backups that still hold the dropped key')
    .option('--timeout <duration>', 'managed: how long to wait for every running instance to load the new key (default 30s); the publication delay is not counted')
    .option('--publish-delay <duration>', 'managed, EdDSA/ES256/RS256 access keys: how long the new key is published in the JWKS before it signs (default REKEY_JWKS_MAX_AGE, 300s; 0 when no outside service verifies)')
    .option('--no-wait', 'managed: return once the key is staged and published; the scheduler promotes it when the publication delay ends'))
    .addHelpText('after', [
      '',
      'Examples:',
      '  rekey --env .env rotate',
      '  rekey --env .env rotate --secret refresh --hard',
      '  rekey --env .env rotate --secret all',
      '  rekey --env .env rotate --convention current-new',
      '  REKEY_ENV_FILE=.env npx rekey rotate',
      '  rekey rotate                       # managed: the keys in ./.rekey/rekey.db',
      '  rekey --store postgres://rekey@db/rekey rotate --secret access --timeout 10s',
      '  rekey rotate --secret access --no-wait        # EdDSA keys: staged and published now, promoted by the scheduler',
      '  rekey rotate --secret access --publish-delay 0   # no verifier outside rekey caches the JWKS',
      '  rekey rotate --smoke https://auth.example.com --smoke-email smoke@example.com --smoke-password-env SMOKE_PASSWORD',
      '  REKEY_MASTER_KEY=<new> REKEY_MASTER_KEY_PREV=<old> rekey rotate --secret master-key',
      '  rekey --env .env rotate --secret ENCRYPTION_KEY   # data key: then rekey rewrap, then finalize (docs/crypt.md)',
      '  rekey rotate --secret ENCRYPTION_KEY              # managed data key (apps use Cipher.fromStore)',
      '',
      'With --smoke, a failed smoke test after the rotation rolls it back (exit 1, naming the failed step).',
      '',
      'Managed mode exits 1 when the timeout passes before every live instance has the new key:',
      'the key stays staged (next) and verifies; run rekey rotate again to finish the rotation.',
    ].join('\n'))
    .action(async (options: RotateOptions, command: Command) => {
      const globals = command.optsWithGlobals<GlobalOptions>()
      // Checked in every mode: a bad value is refused, not ignored where the mode does not use it.
      const timeoutMs = timeoutOf(options.timeout, DEFAULT_ROTATE_TIMEOUT_MS)
      const publishDelayMs = publishDelayOf(options.publishDelay)
      if (options.secret === 'master-key') return await rotateMasterKeyCommand(io, globals)
      if (isDataKeySecret(options.secret) && globals.envFile === undefined) {
        if (options.wait === false || options.publishDelay !== undefined) throw new CliExit(EXIT.USAGE, '--no-wait and --publish-delay apply to JWKS-published signing keys, not to ENCRYPTION_KEY')
        return await rotateManagedDataKey(io, globals, { hard: options.hard === true, timeoutMs })
      }
      if (isDataKeySecret(options.secret)) await guardDataKeyRotate(io, globals, options.hard === true)
      if (globals.envFile !== undefined) {
        await warnFirstRefreshKey(io, globals, options.secret)
        const followUp = isDataKeySecret(options.secret) && options.hard !== true ? await dataKeyFollowUp(globals) : undefined
        await applyEnvPlan(io, globals, options.secret, (vars, layout, fresh, lifetime) => planRotate(vars, layout, fresh(), new Date(), options.hard === true, lifetime), {
          ...(followUp === undefined ? {} : { followUp }),
          ...(options.convention === undefined ? {} : { convention: options.convention }),
          ...(options.tokenLifetime === undefined ? {} : { tokenLifetime: options.tokenLifetime }),
          shredBackups: options.shredBackups === true,
        })
        return
      }
      const secret = managedSecretOf(options.secret)
      const noWait = options.wait === false
      const smoke = smokePlanOf(options, io)
      if (smoke !== null && noWait) throw new CliExit(EXIT.USAGE, '--smoke needs the new key to sign: it cannot run with --no-wait')
      if (smoke !== null && options.hard === true) throw new CliExit(EXIT.USAGE, '--smoke cannot guard --hard: a hard rotation revokes the old key, so it cannot be rolled back')
      const { report, guard } = await withManaged(io, globals, async (ctx) => {
        const report = await ctx.rotation.rotate({
          actor: ctx.actor, hard: options.hard === true, timeoutMs, noWait, onProgress: progressPrinter(io),
          ...(publishDelayMs === undefined ? {} : { publishDelayMs }),
          ...(secret === undefined ? {} : { secret }),
        })
        if (smoke === null || !report.promoted) return { report, guard: null }
        const result = await smoke()
        if (result.ok) return { report, guard: { smoke: result, rolledBack: null } }
        try {
          return { report, guard: { smoke: result, rolledBack: await ctx.rotation.rollback({ actor: ctx.actor, ...(secret === undefined ? {} : { secret }) }) } }
        } catch (err) {
          throw new CliExit(EXIT.REFUSED, `${smokeFailure(result)}; the rollback failed (${describeError(err)}): run rekey rollback`)
        }
      })
      printReport(io, globals, guard === null ? report : { ...report, ...guard }, () => [
        ...report.staged.map((s) => `${s.resumed ? 'resumed' : 'staged'} ${s.purpose} key ${s.kid}`),
        `instances: ${report.instances.length === 0 ? 'none running' : report.instances.map((i) => `${i.instanceId} v${i.keysetVersion}${i.acknowledged ? ' ✓' : ' (waiting)'}`).join(', ')}`,
        ...report.changes.map((c) => `  ${c.purpose} key ${c.kid}: ${c.from} → ${c.to}`),
        ...(report.waitingFor === 'publication' ? [`published in the JWKS until ${report.publishedUntil}; the scheduler promotes it then (or run rekey rotate again)`] : []),
        ...(report.promoted && report.publishedUntil != null ? [`published in the JWKS since staging, signing from ${report.publishedUntil}`] : []),
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
      if (!report.promoted && report.waitingFor === 'publication') return
      if (!report.promoted) {
        const pending = report.instances.filter((i) => !i.acknowledged).map((i) => i.instanceId)
        throw new CliExit(EXIT.REFUSED, `timed out after ${Math.round(report.waitedMs / 1000)} s waiting for ${pending.length} instance(s) to load key-set version ${report.keysetVersion} (${pending.join(', ')}); the new key stays staged as next: run rekey rotate again to finish`)
      }
    })
}
