/**
 * Starting and stopping the HTTP service: config, logger, service, app, listen; and a close
 * that stops accepting, drains in-flight requests, then stops the service and its store.
 */
import type { FastifyInstance } from 'fastify'
import type { DestinationStream, Logger } from 'pino'
import { loadConfig, type LoadConfigOptions, type RekeyConfig } from '../config/load.ts'
import type { Env } from '../core/env.ts'
import type { Clock } from '../service/clock.ts'
import { readEnvFile } from '../config/env-file.ts'
import { EnvFileReloader, readServeEnv } from '../service/env/env-reload.ts'
import { startService, type Service } from '../service/service.ts'
import type { OpenStoreOptions } from '../store/open.ts'
import type { Store } from '../store/store.ts'
import { buildApp } from './app.ts'
import { createLogger } from './logger.ts'

/** Options of {@link startServer}. Everything but the config sources is for tests and embedding. */
export interface StartServerOptions extends LoadConfigOptions {
  /** A config already loaded; the config sources above are then ignored. */
  config?: RekeyConfig
  /** Where log lines go (default stdout). */
  logDestination?: DestinationStream
  /** A logger to use instead of creating one. */
  logger?: Logger
  clock?: Clock
  store?: Store
  storeOptions?: OpenStoreOptions
  instanceId?: string
  heartbeatIntervalMs?: number
  /** Listen on a socket (default true). False: build the app only, for `inject()`. */
  listen?: boolean
  /** `--env-file`: the JWT variables come from this file, over `env`; {@link RunningServer.reload} re-reads it. */
  envFile?: string
  /** With `envFile`: also reload when the file changes on disk (default true). */
  watchEnvFile?: boolean
}

/** A running server. */
export interface RunningServer {
  /** `http://host:port`, or `''` when not listening. */
  readonly url: string
  readonly app: FastifyInstance
  readonly service: Service
  readonly config: RekeyConfig
  readonly log: Logger
  /** Stops accepting, drains in-flight requests, stops the service. Idempotent. */
  close(): Promise<void>
  /** SIGHUP: env-file keys are re-read from the file, managed keys from the store. Never throws. */
  reload(): Promise<void>
}

/** Loads the config (every problem at once: `ERR_CONFIG`), starts the service and the app. */
export async function startServer(options: StartServerOptions = {}): Promise<RunningServer> {
  const baseEnv: Env = options.env ?? process.env
  const env = options.envFile === undefined ? baseEnv : await readServeEnv(options.envFile, baseEnv)
  // In env-file mode the store (and the master key) are looked for beside and in the file, as every command does.
  const envFileVars = options.envFile === undefined ? undefined : (await readEnvFile(options.envFile)).env
  const config = options.config ?? loadConfig({ ...options, env, ...(envFileVars === undefined ? {} : { envFileVars }) })
  const log = options.logger ?? createLogger(config.logLevel, options.logDestination)
  const service = await startService({
    config,
    env,
    log,
    ...(options.clock === undefined ? {} : { clock: options.clock }),
    ...(options.store === undefined ? {} : { store: options.store }),
    ...(options.storeOptions === undefined ? {} : { storeOptions: options.storeOptions }),
    ...(options.instanceId === undefined ? {} : { instanceId: options.instanceId }),
    ...(options.heartbeatIntervalMs === undefined ? {} : { heartbeatIntervalMs: options.heartbeatIntervalMs }),
  })
  let app: FastifyInstance
  let draining = false
  try {
    app = await buildApp(service, log, { draining: () => draining })
  } catch (err) {
    await service.stop()
    throw err
  }
  let url = ''
  if (options.listen !== false) {
    try {
      await app.listen({ port: config.port, host: config.host })
    } catch (err) {
      await app.close().catch(() => {})
      await service.stop()
      throw err
    }
    const address = app.server.address()
    const port = typeof address === 'object' && address !== null ? address.port : config.port
    const host = config.host.includes(':') ? `[${config.host}]` : config.host
    url = `http://${host}:${port}`
    log.info({
      url, store: service.store.location, dialect: service.store.dialect, keys: config.keySource,
      keysetVersion: service.keys.version, instanceId: service.instanceId,
    }, `rekey listening on ${url}`)
  }
  const reloader = options.envFile === undefined || service.keys.source !== 'env'
    ? null
    : new EnvFileReloader({ file: options.envFile, baseEnv, startEnv: env, keys: service.keys, log })
  if (reloader !== null && options.watchEnvFile !== false) reloader.watch()
  let closing: Promise<void> | null = null
  return {
    url, app, service, config, log,
    async reload() {
      if (reloader !== null) {
        await reloader.reload('SIGHUP')
      } else if (service.keys.source === 'managed') {
        log.info('reloading the keys from the store')
        await service.keys.reload()
      } else {
        log.warn('the keys come from the process environment, which a running process cannot re-read: start serve with --env-file PATH to reload them')
      }
    },
    close() {
      closing ??= (async () => {
        reloader?.close()
        log.info('shutting down: draining requests')
        draining = true
        // Connections that turn idle after close() began would otherwise wait for the keep-alive timeout.
        const idle = setInterval(() => app.server.closeIdleConnections(), 100)
        try {
          await app.close()
        } finally {
          clearInterval(idle)
        }
        await service.stop()
        log.info('stopped')
        log.flush?.()
      })()
      return closing
    },
  }
}
