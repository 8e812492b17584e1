import { readFileSync } from 'node:fs'
import { Command, CommanderError } from 'commander'
import { registerAdmin } from './commands/admin.ts'
import { registerEmergency } from './commands/emergency.ts'
import { registerAudit } from './commands/audit.ts'
import { registerDue } from './commands/due.ts'
import { registerFinalize } from './commands/finalize.ts'
import { registerGen } from './commands/gen.ts'
import { registerRecord } from './commands/record.ts'
import { registerServe } from './commands/serve.ts'
import { registerRollback } from './commands/rollback.ts'
import { registerRevoke } from './commands/revoke.ts'
import { registerRotate } from './commands/rotate.ts'
import { registerScan } from './commands/scan.ts'
import { registerBackup } from './commands/backup.ts'
import { registerRestore } from './commands/restore.ts'
import { registerRewrap } from './commands/rewrap.ts'
import { registerRotateDb } from './commands/rotate-db.ts'
import { registerSmoke } from './commands/smoke.ts'
import { registerStatus } from './commands/status.ts'
import { registerUsers } from './commands/users.ts'
import { CliExit, EXIT, type CliIo } from './context.ts'
import { hasControlCharacters, terminalSafe } from '../core/terminal-text.ts'
import { kidOperandsLast } from './dash-operands.ts'
import { failureJson, failureLine, failureOf } from './failure.ts'

const defaultIo: CliIo = {
  stdout: (text) => { process.stdout.write(text) },
  stderr: (text) => { process.stderr.write(text) },
  env: process.env,
}

/** `rekey ... | head`: the reader went away; stop quietly instead of crashing with EPIPE. */
function exitQuietlyOnEpipe(): void {
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(process.exitCode ?? EXIT.OK)
    throw err
  })
}

/** The package's version, from the package.json beside `src/` and `dist/` alike. */
function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }
  return pkg.version
}

/**
 * `--env PATH` and `REKEY_ENV_FILE` are spellings of `--env-file` that Node never reads:
 * `npx rekey --env-file .env` has Node (running npx) load that file into its own process
 * first. All three name one file; two that disagree are refused.
 */
function resolveEnvFileOption(program: Command, io: CliIo): void {
  const opts = program.opts<{ envFile?: string, env?: string }>()
  const named = [opts.envFile, opts.env].filter((v): v is string => v !== undefined)
  if (named.some((v) => v === '')) throw new CliExit(EXIT.USAGE, '--env / --env-file needs a file path')
  if (new Set(named).size > 1) throw new CliExit(EXIT.USAGE, `--env ${opts.env} and --env-file ${opts.envFile} name different files: give one`)
  const fromEnv = io.env.REKEY_ENV_FILE
  const file = named[0] ?? (fromEnv === undefined || fromEnv === '' ? undefined : fromEnv)
  if (file !== undefined) program.setOptionValue('envFile', file)
}

/** `--operator` is recorded in the audit log: a blank name would record no one, a control character would forge what readers see. */
function checkOperatorOption(program: Command): void {
  const operator = program.opts<{ operator?: string }>().operator
  if (operator !== undefined && operator.trim() === '') throw new CliExit(EXIT.USAGE, '--operator needs a name (it is recorded in the audit log); leave it out to record the OS user')
  if (operator !== undefined && hasControlCharacters(operator)) throw new CliExit(EXIT.USAGE, '--operator must not hold control, format or bidi characters (it is recorded in the audit log)')
}

/** Builds the `rekey` program: global options, then one registered command per file. */
export function buildProgram(io: CliIo = defaultIo): Command {
  const program = new Command('rekey')
    .description('secret rotation for Node.js services: keys, rotation, audit and the auth service')
    .option('--env-file <path>', 'env-file mode: read and rewrite this .env file (through npx or node, use --env: Node reads --env-file itself)')
    .option('--env <path>', 'alias of --env-file, safe through npx and node; also REKEY_ENV_FILE')
    .option('--store <sqlite-path-or-postgres-url>', 'managed mode store (default REKEY_STORE, then ./.rekey/rekey.db)')
    .option('--json', 'machine-readable output')
    .option('--operator <name>', 'who is acting, for the audit log (default: the OS user)')
    .version(packageVersion(), '-V, --version', 'print the version of rekey')
    .exitOverride()
    // Parse errors are printed by main() in the one failure format, not by commander.
    .configureOutput({ writeOut: io.stdout, writeErr: io.stderr, outputError: () => {} })
  program.hook('preAction', () => {
    resolveEnvFileOption(program, io)
    checkOperatorOption(program)
  })
  registerGen(program, io)
  registerServe(program, io)
  registerRotate(program, io)
  registerFinalize(program, io)
  registerRollback(program, io)
  registerStatus(program, io)
  registerScan(program, io)
  registerBackup(program, io)
  registerRestore(program, io)
  registerDue(program, io)
  registerRecord(program, io)
  registerAudit(program, io)
  registerRotateDb(program, io)
  registerSmoke(program, io)
  registerRevoke(program, io)
  registerEmergency(program, io)
  registerAdmin(program, io)
  registerUsers(program, io)
  registerRewrap(program, io)
  return program
}

/** Runs the CLI and returns its exit code: 0 done, 1 a check said no, 2 bad usage or configuration. */
export async function main(argv: readonly string[], rawIo: CliIo = defaultIo): Promise<number> {
  // Every line passes here: what a command prints from stored data cannot drive the terminal.
  const io: CliIo = { stdout: (text) => rawIo.stdout(terminalSafe(text)), stderr: (text) => rawIo.stderr(terminalSafe(text)), env: rawIo.env }
  const program = buildProgram(io)
  if (rawIo === defaultIo) exitQuietlyOnEpipe()
  try {
    await program.parseAsync(kidOperandsLast(program, argv), { from: 'user' })
    return EXIT.OK
  } catch (err) {
    // Help and version are successes.
    if (err instanceof CommanderError && err.exitCode === 0) return EXIT.OK
    const failure = failureOf(err)
    // Before commander has parsed, or when parsing failed, --json is still honoured.
    const json = program.opts<{ json?: boolean }>().json === true || argv.includes('--json')
    io.stderr(json ? failureJson(failure) : failureLine(failure))
    return failure.exitCode
  }
}

// `node src/cli/main.ts ...` (npm start) runs the CLI; importing this module does not.
if (import.meta.main) process.exitCode = await main(process.argv.slice(2))
