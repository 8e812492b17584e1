import { InvalidArgumentError, type Command } from 'commander'
import { generateSecret } from '../../core/secret.ts'
import { CliExit, EXIT, type CliIo, type GlobalOptions } from '../context.ts'
import { applyEnvGen } from '../env-mode.ts'

interface GenOptions {
  bytes: number
  encoding: 'hex' | 'base64' | 'base64url'
  var?: string
  force?: boolean
}

function bytesArg(value: string): number {
  const n = Number(value)
  if (!Number.isInteger(n) || n < 32 || n > 64) throw new InvalidArgumentError('must be an integer from 32 to 64')
  return n
}

/** `rekey gen`: a new secret, printed, or written into an env file and not printed. */
export function registerGen(program: Command, io: CliIo): void {
  program
    .command('gen')
    .description('generate a strong secret; with --env (or --env-file) and --var it is written there and not printed')
    .option('--bytes <n>', 'random bytes, 32 to 64', bytesArg, 32)
    .option('--encoding <encoding>', 'hex, base64 or base64url', 'hex')
    .option('--var <name>', 'the variable to set in --env-file')
    .option('--force', 'replace a value the variable already has (a live key: use rekey rotate instead)')
    .addHelpText('after', '\nExamples:\n  rekey gen\n  rekey gen --bytes 64 --encoding base64url\n  rekey --env .env gen --var JWT_SECRET')
    .action(async (options: GenOptions, command: Command) => {
      const globals = command.optsWithGlobals<GlobalOptions & GenOptions>()
      if (!['hex', 'base64', 'base64url'].includes(options.encoding)) {
        throw new CliExit(EXIT.USAGE, '--encoding must be hex, base64 or base64url')
      }
      const secret = generateSecret({ bytes: options.bytes, encoding: options.encoding })
      if (options.var === undefined && globals.envFile === undefined) {
        io.stdout(globals.json === true ? `${JSON.stringify({ secret })}\n` : `${secret}\n`)
        return
      }
      if (options.var === undefined || globals.envFile === undefined) {
        throw new CliExit(EXIT.USAGE, 'give both --env (or --env-file) and --var to write the secret into a file')
      }
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(options.var)) throw new CliExit(EXIT.USAGE, '--var must be a variable name')
      const audit = await applyEnvGen(io, globals, options.var, secret, `new ${options.bytes}-byte ${options.encoding} secret`, options.force === true)
      const report = { file: globals.envFile, variable: options.var, bytes: options.bytes, encoding: options.encoding, audit }
      io.stdout(globals.json === true ? `${JSON.stringify(report)}\n` : `wrote a new ${options.bytes}-byte secret to ${options.var} in ${globals.envFile}\n`)
    })
}
