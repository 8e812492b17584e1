/**
 * `--smoke URL` of `rekey rotate` and `rekey finalize` (managed mode): the smoke test of a
 * running service as the guard of a change. After a rotate, a failed smoke test rolls the
 * rotation back. Finalize cannot be undone (the old key is retired), so its smoke test runs
 * BEFORE it: a failure leaves the keys as they were and finalize does not run.
 */
import type { Command } from 'commander'
import { runSmoke, type SmokeResult } from '../ops/smoke/run-smoke.ts'
import { CliExit, EXIT, type CliIo } from './context.ts'

/** The smoke options as commander parses them. */
export interface SmokeFlags {
  smoke?: string
  smokeEmail?: string
  smokePasswordEnv?: string
  smokeTimeout?: string
}

/** Adds `--smoke URL`, `--smoke-email E`, `--smoke-password-env VAR` to a command. */
export function addSmokeOptions(command: Command): Command {
  return command
    .option('--smoke <url>', 'managed: run the smoke test (health, login, me, refresh) against this running service as a guard')
    .option('--smoke-email <email>', 'with --smoke: the account the smoke test logs in as')
    .option('--smoke-password-env <var>', 'with --smoke: the environment variable holding its password')
}

/** The smoke run to do, or `null` without `--smoke`; exit 2 when its options are incomplete. */
export function smokePlanOf(flags: SmokeFlags, io: CliIo): (() => Promise<SmokeResult>) | null {
  if (flags.smoke === undefined) {
    if (flags.smokeEmail !== undefined || flags.smokePasswordEnv !== undefined) throw new CliExit(EXIT.USAGE, '--smoke-email and --smoke-password-env go with --smoke URL')
    return null
  }
  if (flags.smokeEmail === undefined || flags.smokePasswordEnv === undefined) {
    throw new CliExit(EXIT.USAGE, '--smoke needs --smoke-email E and --smoke-password-env VAR (the variable holding the password)')
  }
  const password = io.env[flags.smokePasswordEnv]
  if (password === undefined || password === '') throw new CliExit(EXIT.USAGE, `--smoke-password-env: ${flags.smokePasswordEnv} is not set`)
  try {
    const url = new URL(flags.smoke)
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new TypeError('not http')
  } catch {
    throw new CliExit(EXIT.USAGE, '--smoke must be an http:// or https:// URL')
  }
  const { smoke, smokeEmail } = flags
  return () => runSmoke({ url: smoke, email: smokeEmail, password })
}

/** One line naming the failed step and why (never a token). */
export function smokeFailure(result: SmokeResult): string {
  const step = result.steps.find((s) => !s.ok)
  return `smoke test failed at ${result.failedStep ?? '?'}${step?.error === undefined ? '' : ` (${step.error})`}`
}
