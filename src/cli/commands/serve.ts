import { InvalidArgumentError, type Command } from 'commander'
import type { RunningServer, StartServerOptions } from '../../http/server.ts'
import type { CliIo, GlobalOptions } from '../context.ts'

export type { RunningServer, StartServerOptions }

interface ServeOptions {
  port?: number
  host?: string
  config?: string
  watch?: boolean
}

function portArg(value: string): number {
  const n = Number(value)
  if (!/^\d+$/.test(value) || n > 65535) throw new InvalidArgumentError('must be a port number from 0 to 65535')
  return n
}

/** How long a drain may take before the process exits anyway, ms. */
const SHUTDOWN_GRACE_MS = 10_000

/**
 * `rekey serve`: the auth service. Runs until SIGTERM or SIGINT, then stops accepting,
 * drains in-flight requests, closes the store and exits 0. SIGHUP reloads the keys: from the
 * `--env-file` (which is also watched), or from the store in managed mode.
 */
export function registerServe(program: Command, io: CliIo): void {
  program
    .command('serve')
    .description('run the auth service (health, register, login, refresh, logout, me, JWKS, metrics)')
    .option('--port <port>', 'port to listen on, 0 for any free port (default REKEY_PORT, then PORT, then 3000)', portArg)
    .option('--host <host>', 'address to listen on (default REKEY_HOST, then 127.0.0.1)')
    .option('--config <file>', 'settings file (default ./rekey.config.json when it exists)')
    .option('--no-watch', 'with --env-file: reload the keys on SIGHUP only, not when the file changes')
    .addHelpText('after', '\nExamples:\n  rekey serve\n  rekey serve --port 8080 --host 0.0.0.0\n  rekey --env /etc/rekey/rekey.env serve   # keys from the file, reloaded when it changes or on SIGHUP\n  REKEY_STORE=postgres://rekey@db/rekey REKEY_MASTER_KEY=... rekey serve')
    .action(async (options: ServeOptions, command: Command) => {
      const globals = command.optsWithGlobals<GlobalOptions & ServeOptions>()
      // Loaded here, not at the top: the other commands start faster without Fastify.
      const { startServer } = await import('../../http/server.ts')
      const server = await startServer({
        env: io.env,
        ...(options.config === undefined ? {} : { configFile: options.config }),
        flags: { port: options.port, host: options.host, store: globals.store },
        ...(globals.envFile === undefined ? {} : { envFile: globals.envFile, watchEnvFile: options.watch !== false }),
      })
      await untilSignal(server)
    })
}

function untilSignal(server: RunningServer): Promise<void> {
  return new Promise((resolve) => {
    const reload = (): void => {
      server.log.info({ signal: 'SIGHUP' }, 'signal received: reloading the keys')
      void server.reload()
    }
    const stop = (signal: NodeJS.Signals): void => {
      process.off('SIGTERM', stop)
      process.off('SIGINT', stop)
      server.log.info({ signal }, 'signal received')
      // If something keeps the drain from finishing, exit anyway.
      setTimeout(() => process.exit(1), SHUTDOWN_GRACE_MS).unref()
      server.close().then(resolve, (err: unknown) => {
        server.log.error({ err }, 'shutdown failed')
        process.exitCode = 1
        resolve()
      })
    }
    process.on('SIGTERM', stop)
    process.on('SIGINT', stop)
    process.on('SIGHUP', reload)
  })
}
