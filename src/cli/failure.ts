import { CommanderError } from 'commander'
import { CliExit, EXIT, exitCodeOf } from './context.ts'

/** Appended to a usage error, so the one line says where the usage is. */
const USAGE_HINT = '(run rekey --help for usage)'

/** What the CLI prints for a failure: the code, one line of message, and the exit code. */
export interface Failure {
  readonly code: string
  /** One line, for people. */
  readonly message: string
  /** The message as it was thrown (a problem list keeps its lines), for `--json`. */
  readonly detail: string
  readonly exitCode: number
  /** The operating system's code (`EACCES`, `EADDRINUSE`...) of a system error. */
  readonly errno?: string
}

interface SystemError extends Error {
  code: string
  syscall?: string
  address?: string
  port?: number
  path?: string
  dest?: string
}

function isSystemError(err: unknown): err is SystemError {
  return err instanceof Error && typeof (err as { code?: unknown }).code === 'string' &&
    /^E[A-Z0-9]+$/.test((err as unknown as { code: string }).code) && typeof (err as { syscall?: unknown }).syscall === 'string'
}

/** A system error in words that say what to change, not Node's `listen EADDRINUSE: ...`. */
function systemMessage(err: SystemError): string {
  const where = err.address === undefined ? undefined : `${err.address}${err.port === undefined ? '' : `:${err.port}`}`
  if (err.syscall === 'listen' || err.syscall === 'bind') {
    if (err.code === 'EADDRINUSE') return `${where ?? 'the address'} is already in use by another process: stop it, or choose another port with --port, REKEY_PORT or PORT`
    if (err.code === 'EACCES' || err.code === 'EPERM') return `not allowed to listen on ${where ?? 'that address'} (ports below 1024 need privileges): choose a port from 1024 with --port, REKEY_PORT or PORT`
    if (err.code === 'EADDRNOTAVAIL') return `${where ?? 'the address'} is not an address of this machine: choose another with --host or REKEY_HOST`
  }
  const file = err.path === undefined ? '' : ` ${err.path}`
  if (err.code === 'EACCES' || err.code === 'EPERM') return `permission denied (${err.syscall}${file}): run as a user who may use it, or change its owner or mode`
  if (err.code === 'ENOENT') return `no such file or directory (${err.syscall}${file})`
  if (err.code === 'EROFS') return `read-only file system (${err.syscall}${file})`
  if (err.code === 'ENOSPC') return `no space left on the device (${err.syscall}${file})`
  // Node's own message already names the call and the path.
  return err.message
}

/**
 * A path that cannot be what it must (a directory where a file is named, a loop of symbolic
 * links, a file where a directory is needed) is a configuration to change, not a refusal of
 * the operating system: `ERR_CONFIG`, exit 2.
 */
function pathConfigMessage(err: SystemError): string | undefined {
  // rename, link and copyfile name two paths: the one that is in the way is the destination.
  const call = err.dest === undefined ? err.syscall : `${err.syscall} of ${err.path ?? '?'}`
  const file = err.dest ?? err.path ?? 'the path'
  if (err.code === 'EISDIR') return `${file} is a directory (${call}): name a file (--env-file, --store, REKEY_STORE), or move the directory away`
  if (err.code === 'ELOOP') return `${file} is a loop of symbolic links (${call}): point the link at a real file, or name another path`
  if (err.code === 'ENOTDIR') return `a part of ${file} is a file, not a directory (${call}): fix the path`
  return undefined
}

/** The message of a commander parse error, without its `error: ` prefix. */
function usageMessage(err: CommanderError): string {
  return `${err.message.replace(/^error: /, '').replace(/\n+/g, ' ')} ${USAGE_HINT}`
}

/**
 * Classifies any failure the CLI can meet: a `RekeyError` keeps its code; the CLI's own
 * verdicts are `ERR_USAGE` (exit 2) or `ERR_REFUSED` (exit 1); a parse error of the command
 * line is `ERR_USAGE`; an error of the operating system is `ERR_SYSTEM`; anything else is
 * `ERR_INTERNAL`. The message is always one line: a report is read by people and by `grep`.
 */
export function failureOf(err: unknown): Failure {
  if (err instanceof CommanderError) {
    const message = oneLine(usageMessage(err))
    return { code: 'ERR_USAGE', message, detail: message, exitCode: EXIT.USAGE }
  }
  const exitCode = exitCodeOf(err)
  const message = err instanceof Error ? err.message : String(err)
  const own = (err as { code?: unknown } | null | undefined)?.code
  if (typeof own === 'string' && own.startsWith('ERR_')) return { code: own, message: oneLine(message), detail: message, exitCode }
  const config = isSystemError(err) ? pathConfigMessage(err) : undefined
  if (config !== undefined) return { code: 'ERR_CONFIG', message: config, detail: config, exitCode: EXIT.USAGE, errno: (err as SystemError).code }
  if (isSystemError(err)) return { code: 'ERR_SYSTEM', message: oneLine(systemMessage(err)), detail: systemMessage(err), exitCode, errno: err.code }
  if (err instanceof CliExit) return { code: err.exitCode === EXIT.USAGE ? 'ERR_USAGE' : 'ERR_REFUSED', message: oneLine(message), detail: message, exitCode }
  return { code: exitCode === EXIT.USAGE ? 'ERR_USAGE' : 'ERR_INTERNAL', message: oneLine(message), detail: message, exitCode }
}

/** Several lines (an `ERR_CONFIG` problem list) joined into one, each problem kept: `head: a; b`. */
function oneLine(text: string): string {
  const [head = '', ...rest] = text.split('\n').map((line) => line.trim()).filter((line) => line !== '')
  if (rest.length === 0) return head
  const items = rest.map((line) => line.replace(/^- /, ''))
  return `${head}${head.endsWith(':') ? ' ' : '; '}${items.join('; ')}`
}

/** The line for people on stderr: `rekey: ERR_CODE: message`. */
export function failureLine(failure: Failure): string {
  return `rekey: ${failure.code}: ${failure.message}\n`
}

/** The `--json` form: one object, `{ "error": CODE, "message": TEXT }`, as the HTTP API answers. */
export function failureJson(failure: Failure): string {
  return `${JSON.stringify({ error: failure.code, message: failure.detail, ...(failure.errno === undefined ? {} : { errno: failure.errno }) })}\n`
}
