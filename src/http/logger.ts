/**
 * The service logger: pino, JSON lines, with every place a secret could appear redacted.
 * Request bodies are never logged; requests are logged by method, URL and address only.
 */
import { pino, type DestinationStream, type Logger } from 'pino'

/** Paths pino censors wherever they appear in a log object (one level of nesting covered by `*`). */
export const REDACT_PATHS: readonly string[] = Object.freeze([
  'req.headers.authorization', 'req.headers.cookie', 'req.headers["x-api-key"]', 'res.headers["set-cookie"]',
  'headers.authorization', 'headers.cookie',
  'authorization', 'cookie', 'password', 'accessToken', 'refreshToken', 'token', 'secret', 'masterKey', 'metricsToken', 'body',
  '*.authorization', '*.cookie', '*.password', '*.accessToken', '*.refreshToken', '*.token', '*.secret', '*.masterKey', '*.metricsToken', '*.body',
])

/** A logger at `level`, writing to `destination` (default stdout). */
export function createLogger(level: string, destination?: DestinationStream): Logger {
  return pino({
    level,
    base: { service: 'rekey' },
    redact: { paths: [...REDACT_PATHS], censor: '[redacted]' },
    serializers: {
      req: (req: { method?: string, url?: string, ip?: string, id?: string }) => ({ method: req.method, url: req.url?.split('?')[0], remoteAddress: req.ip }),
      res: (res: { statusCode?: number }) => ({ statusCode: res.statusCode }),
      err: pino.stdSerializers.err,
    },
  }, destination)
}
