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
import { registerRotateDb } from './commands/rotate-db.ts'
import { registerSmoke } from './commands/smoke.ts'
import { registerStatus } from './commands/status.ts'
import type { CliErrorCode } from '../core/errors.ts'
import { CliExit, describeError, exitCodeOf, EXIT, type CliIo } from './context.ts'

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

/** The `--json` error object: `{ "error": CODE, "message": TEXT }`, as the HTTP API answers. */
function jsonError(err: unknown): string {
  const own = (err as { code?: unknown })?.code
  // The CLI's own codes come from CLI_ERRORS (src/core/errors.ts), documented in docs/errors.md.
  const cli = (code: CliErrorCode): CliErrorCode => code
  const code = typeof own === 'string' && own.startsWith('ERR_')
    ? own
    : err instanceof CliExit ? cli(err.exitCode === EXIT.USAGE ? 'ERR_USAGE' : 'ERR_REFUSED') : cli(exitCodeOf(err) === EXIT.USAGE ? 'ERR_USAGE' : 'ERR_INTERNAL')
  return JSON.stringify({ error: code, message: err instanceof Error ? err.message : String(err) })
}

/** Builds the `rekey` program: global options, then one registered command per file. */
export function buildProgram(io: CliIo = defaultIo): Command {
  const program = new Command('rekey')
    .description('secret rotation for Node.js services: keys, rotation, audit and the auth service')
    .option('--env-file <path>', 'env-file mode: read and rewrite this .env file')
    .option('--store <sqlite-path-or-postgres-url>', 'managed mode store (default REKEY_STORE, then ./.rekey/rekey.db)')
    .option('--json', 'machine-readable output')
    .option('--operator <name>', 'who is acting, for the audit log (default: the OS user)')
    .showHelpAfterError('(run rekey --help for usage)')
    .exitOverride()
    .configureOutput({ writeOut: io.stdout, writeErr: io.stderr })
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
  return program
}

/** Runs the CLI and returns its exit code: 0 done, 1 a check said no, 2 bad usage or configuration. */
export async function main(argv: readonly string[], io: CliIo = defaultIo): Promise<number> {
  const program = buildProgram(io)
  if (io === defaultIo) exitQuietlyOnEpipe()
  try {
    await program.parseAsync([...argv], { from: 'user' })
    return EXIT.OK
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and version are successes; every other parse failure is bad usage.
      return err.exitCode === 0 ? EXIT.OK : EXIT.USAGE
    }
    const json = program.opts<{ json?: boolean }>().json === true || argv.includes('--json')
    io.stderr(json ? `${jsonError(err)}\n` : `rekey: ${describeError(err)}\n`)
    return exitCodeOf(err)
  }
}

// `node src/cli/main.ts ...` (npm start) runs the CLI; importing this module does not.
if (import.meta.main) process.exitCode = await main(process.argv.slice(2))
