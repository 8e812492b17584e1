import os from 'node:os'
import { RekeyError, isRekeyError } from '../core/errors.ts'

/** Where a command writes, and the environment it reads: injectable for tests. */
export interface CliIo {
  readonly stdout: (text: string) => void
  readonly stderr: (text: string) => void
  readonly env: Record<string, string | undefined>
}

/** The global options every command receives. */
export interface GlobalOptions {
  envFile?: string
  store?: string
  json?: boolean
  operator?: string
}

/** Exit codes, as the contract fixes them. */
export const EXIT = Object.freeze({ OK: 0, REFUSED: 1, USAGE: 2 })

/** A command's verdict when it is not plain success. */
export class CliExit extends Error {
  readonly exitCode: number
  /** The code printed with the message; unset, `ERR_USAGE` (exit 2) or `ERR_REFUSED` (exit 1). */
  readonly code: string | undefined
  constructor(exitCode: number, message: string, code?: `ERR_${string}`) {
    super(message)
    this.exitCode = exitCode
    this.code = code
  }
}

/** The operator recorded in the audit log: `--operator`, else the OS user. */
export function operatorOf(options: GlobalOptions): string {
  if (options.operator !== undefined && options.operator !== '') return options.operator
  try {
    return os.userInfo().username
  } catch {
    return 'unknown'
  }
}

/** Maps an error to its exit code: configuration and usage 2, refusals 1. */
export function exitCodeOf(err: unknown): number {
  if (err instanceof CliExit) return err.exitCode
  if (isRekeyError(err)) {
    return err.code === 'ERR_CONFIG' || err.code === 'ERR_WEAK_SECRET' ? EXIT.USAGE : EXIT.REFUSED
  }
  if (err instanceof TypeError || err instanceof RangeError) return EXIT.USAGE
  return EXIT.REFUSED
}

/** One line for people: the code and message, never a stack trace. */
export function describeError(err: unknown): string {
  if (isRekeyError(err)) return `${(err as RekeyError).code}: ${err.message}`
  // Errors of the ops (a BackupError) carry a catalog code too: the line always names it.
  const code = (err as { code?: unknown } | null)?.code
  if (err instanceof Error && typeof code === 'string' && /^ERR_[A-Z_]+$/.test(code)) return `${code}: ${err.message}`
  if (err instanceof Error) return err.message
  return String(err)
}
