import { Command, CommanderError } from 'commander'
import { registerFinalize } from './commands/finalize.ts'
import { registerGen } from './commands/gen.ts'
import { registerServe } from './commands/serve.ts'
import { registerRollback } from './commands/rollback.ts'
import { registerRotate } from './commands/rotate.ts'
import { registerStatus } from './commands/status.ts'
import { describeError, exitCodeOf, EXIT, type CliIo } from './context.ts'

const defaultIo: CliIo = {
  stdout: (text) => { process.stdout.write(text) },
  stderr: (text) => { process.stderr.write(text) },
  env: process.env,
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
  return program
}

/** Runs the CLI and returns its exit code: 0 done, 1 a check said no, 2 bad usage or configuration. */
export async function main(argv: readonly string[], io: CliIo = defaultIo): Promise<number> {
  const program = buildProgram(io)
  try {
    await program.parseAsync([...argv], { from: 'user' })
    return EXIT.OK
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and version are successes; every other parse failure is bad usage.
      return err.exitCode === 0 ? EXIT.OK : EXIT.USAGE
    }
    io.stderr(`rekey: ${describeError(err)}\n`)
    return exitCodeOf(err)
  }
}

// `node src/cli/main.ts ...` (npm start) runs the CLI; importing this module does not.
if (import.meta.main) process.exitCode = await main(process.argv.slice(2))
