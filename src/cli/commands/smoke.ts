import { InvalidArgumentError, type Command } from 'commander'
import { formatSmoke, runSmoke } from '../../ops/smoke/run-smoke.ts'
import { CliExit, EXIT, type CliIo, type GlobalOptions } from '../context.ts'

interface SmokeCliOptions {
  url: string
  email: string
  passwordEnv: string
  timeout: number
}

function timeoutArg(value: string): number {
  const n = Number(value)
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError('must be a positive number of milliseconds')
  return n
}

/** `rekey smoke`: health, login, protected call, refresh, protected call; exit 1 naming the failed step. */
export function registerSmoke(program: Command, io: CliIo): void {
  program
    .command('smoke')
    .description('smoke-test a running service: ping, login, /api/auth/me, refresh, /api/auth/me again; exit 1 on any failure')
    .requiredOption('--url <url>', 'the service base URL')
    .requiredOption('--email <email>', 'the account to log in with')
    .requiredOption('--password-env <variable>', 'the environment variable holding its password (never a flag: flags show in ps)')
    .option('--timeout <ms>', 'timeout of each step, in milliseconds', timeoutArg, 5000)
    .addHelpText('after', '\nExamples:\n  SMOKE_PASSWORD=... rekey smoke --url https://auth.example.com --email smoke@example.com --password-env SMOKE_PASSWORD')
    .action(async (options: SmokeCliOptions, command: Command) => {
      const globals = command.optsWithGlobals<GlobalOptions & SmokeCliOptions>()
      const password = io.env[options.passwordEnv]
      if (password === undefined || password === '') throw new CliExit(EXIT.USAGE, `the variable ${options.passwordEnv} (--password-env) is not set`)
      let result
      try {
        result = await runSmoke({ url: options.url, email: options.email, password, timeoutMs: options.timeout })
      } catch (err) {
        throw new CliExit(EXIT.USAGE, (err as Error).message)
      }
      io.stdout(globals.json === true ? `${JSON.stringify(result)}\n` : formatSmoke(result))
      if (!result.ok) throw new CliExit(EXIT.REFUSED, `smoke test failed at ${result.failedStep ?? '?'}`)
    })
}
