/**
 * `rekey gen --var NAME` into an env file that already gives NAME a value would replace a live
 * secret at once: every token a JWT key signed refused, every value a data key encrypted
 * unreadable, a provider's password no longer the one it expects. That is refused (exit 2)
 * unless `--force`, pointing at the rotation that keeps the old key working meanwhile.
 */
import { CliExit, EXIT } from './context.ts'

/** The env-file rotation of each variable rekey rotates, as `--secret` of `rekey rotate`. */
const ROTATION_OF: Readonly<Record<string, { secret: string | undefined, what: string }>> = {
  JWT_SECRET: { secret: undefined, what: 'every token it signed would be refused' },
  JWT_SECRET_CURRENT: { secret: undefined, what: 'every token it signed would be refused' },
  JWT_SECRET_NEW: { secret: undefined, what: 'every token it signed would be refused' },
  JWT_ACCESS_SECRET: { secret: 'access', what: 'every access token it signed would be refused' },
  JWT_REFRESH_SECRET: { secret: 'refresh', what: 'every refresh token it signed would be refused (every session ends)' },
  ENCRYPTION_KEY: { secret: 'ENCRYPTION_KEY', what: 'every value it encrypted would be unreadable' },
}

function quoteArg(value: string): string {
  return /^[\w./-]+$/.test(value) ? value : `'${value.replace(/'/g, `'\\''`)}'`
}

/** Throws `ERR_USAGE` (exit 2) when `current` is a value that gen would overwrite. */
export function refuseOverwrite(file: string, variable: string, current: string | undefined): void {
  if (current === undefined || current === '') return
  const rotation = ROTATION_OF[variable]
  if (rotation === undefined) {
    throw new CliExit(EXIT.USAGE, `${variable} already has a value in ${file}: gen would replace it at once, and whatever uses it stops working; give --force to replace it (the old file is kept as a backup generation)`)
  }
  const command = `rekey --env ${quoteArg(file)} rotate${rotation.secret === undefined ? '' : ` --secret ${rotation.secret}`}`
  throw new CliExit(EXIT.USAGE, `${variable} already holds a live key in ${file}: gen would replace it at once and ${rotation.what}; rotate it instead (the old key keeps working until finalize): ${command}; or give --force to replace it anyway`)
}
