import { InvalidArgumentError, type Command } from 'commander'
import { readEnvFile } from '../../config/env-file.ts'
import { parseDuration } from '../../core/duration.ts'
import { assertOneConvention } from '../../core/env-rotation.ts'
import { openAuditTrail, type AuditTrail } from '../../ops/rotate-db/audit-trail.ts'
import { finalizeDbRotation } from '../../ops/rotate-db/finalize-db.ts'
import { DEFAULT_DB_DELAY_SECONDS, rotateDbCredentials } from '../../ops/rotate-db/rotate-db.ts'
import { envFileTarget, storeTarget, type DbSecretTarget } from '../../ops/rotate-db/rotation-state.ts'
import { commandConfig } from '../audit-store.ts'
import { CliExit, EXIT, operatorOf, type CliIo, type GlobalOptions } from '../context.ts'

interface RotateDbCliOptions {
  var: string
  adminUrl?: string
  delay: number
  appRole?: string
  force?: boolean
}

/** Options of `rekey finalize` that reach {@link finalizeDbCommand}. */
export interface FinalizeDbCliOptions {
  secret?: string
  force?: boolean
  adminUrl?: string
  terminate?: boolean
}

const VARIABLE = /^[A-Za-z_][A-Za-z0-9_]*$/

/** The environment variable read when `--admin-url` is not given (keeps the password out of `ps`). */
export const ADMIN_URL_VARIABLE = 'REKEY_DB_ADMIN_URL'

/** True when `rekey finalize --secret NAME` is about a database URL: a name ending in `_URL`. */
export function isDbSecret(name: string | undefined): boolean {
  return name !== undefined && /^[A-Za-z_][A-Za-z0-9_]*_URL$/.test(name)
}

function delayArg(value: string): number {
  const seconds = parseDuration(value)
  if (seconds === undefined) throw new InvalidArgumentError('must be a duration such as 24h, 90m or 2d')
  return seconds
}

function adminUrlOf(option: string | undefined, io: CliIo): string {
  const url = option ?? io.env[ADMIN_URL_VARIABLE]
  if (url === undefined || url === '') throw new CliExit(EXIT.USAGE, `give --admin-url or set ${ADMIN_URL_VARIABLE}: a PostgreSQL role that may create roles and grant the application role`)
  return url
}

async function withTarget<T>(io: CliIo, globals: GlobalOptions, variable: string, fn: (target: DbSecretTarget, trail: AuditTrail) => Promise<T>): Promise<T> {
  if (!VARIABLE.test(variable)) throw new CliExit(EXIT.USAGE, '--var must be a variable name')
  // A file mixing JWT conventions is refused by every command, with the keyring's message, before any change.
  if (globals.envFile !== undefined) assertOneConvention((await readEnvFile(globals.envFile)).env)
  // The store that records the rotation: resolved as for every command (beside the env file in env-file mode).
  const trail = await openAuditTrail(await commandConfig(io, globals), operatorOf(globals))
  try {
    const target = globals.envFile === undefined ? storeTarget(trail, variable, io.env) : envFileTarget(globals.envFile, variable, trail)
    return await fn(target, trail)
  } finally {
    await trail.store.close()
  }
}

/** `rekey rotate-db`: PostgreSQL credentials rotated with alternating login users. */
export function registerRotateDb(program: Command, io: CliIo): void {
  program
    .command('rotate-db')
    .description('rotate PostgreSQL credentials with alternating users: the idle user gets a new password, the URL is tested and written; `rekey finalize --secret VAR` disables the old user after --delay')
    .option('--var <name>', 'the variable holding the database URL', 'DATABASE_URL')
    .option('--admin-url <url>', `a role allowed to create roles and grant the application role (default ${ADMIN_URL_VARIABLE})`)
    .option('--delay <duration>', 'how long the previous user keeps logging in before finalize may disable it', delayArg, DEFAULT_DB_DELAY_SECONDS)
    .option('--app-role <role>', 'the NOLOGIN role holding the grants (default: the user without _blue/_green)')
    .option('--force', 'rotate although the previous rotation was not finalized')
    .addHelpText('after', [
      '',
      'Examples:',
      '  REKEY_DB_ADMIN_URL=postgres://admin@db/app rekey --env .env rotate-db --var DATABASE_URL',
      '  rekey --env .env finalize --secret DATABASE_URL      # after the delay (default 24h)',
    ].join('\n'))
    .action(async (options: RotateDbCliOptions, command: Command) => {
      const globals = command.optsWithGlobals<GlobalOptions & RotateDbCliOptions>()
      const adminUrl = adminUrlOf(options.adminUrl, io)
      const result = await withTarget(io, globals, options.var, (target, trail) => rotateDbCredentials({
        variable: options.var,
        adminUrl,
        target,
        trail,
        delaySeconds: options.delay,
        ...(options.appRole === undefined ? {} : { appRole: options.appRole }),
        force: options.force === true,
      }))
      if (globals.json === true) {
        io.stdout(`${JSON.stringify(result)}\n`)
        return
      }
      io.stdout([
        `rotate-db: ${result.variable} now logs in as ${result.user} (role ${result.appRole})${result.createdUser ? ', a new user' : ''}`,
        `  ${result.url}  tested: SELECT 1, session_user, grants`,
        `  written to the ${result.target}`,
        `  ${result.previousUser} keeps logging in until: rekey finalize --secret ${result.variable} (safe from ${result.finalizeAfter})`,
        '',
      ].join('\n'))
    })
}

/**
 * `rekey finalize --secret <NAME>_URL`: disables the previous database user. Called by the
 * finalize command when {@link isDbSecret} holds; the admin URL comes from `options.adminUrl`
 * or REKEY_DB_ADMIN_URL.
 */
export async function finalizeDbCommand(io: CliIo, globals: GlobalOptions, options: FinalizeDbCliOptions): Promise<void> {
  const variable = options.secret ?? 'DATABASE_URL'
  const result = await withTarget(io, globals, variable, async (target, trail) => {
    // Nothing pending needs no admin URL; a pending one does.
    if (await target.readPending() === null) return null
    return await finalizeDbRotation({
      variable,
      adminUrl: adminUrlOf(options.adminUrl, io),
      target,
      trail,
      force: options.force === true,
      terminateSessions: options.terminate === true,
    })
  })
  if (globals.json === true) {
    io.stdout(`${JSON.stringify(result ?? { variable, changed: false })}\n`)
    return
  }
  if (result === null || !result.changed) {
    io.stdout(`nothing to do: no database rotation of ${variable} is pending\n`)
    return
  }
  io.stdout(`finalize: ${result.disabledUser ?? '?'} can no longer log in; ${variable} uses ${result.user ?? '?'}${result.sessionsTerminated > 0 ? ` (${result.sessionsTerminated} session(s) ended)` : ''}${result.forced ? ' [forced]' : ''}\n`)
}
