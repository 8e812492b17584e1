/**
 * Crash points for tests: `failpoint(name)` marks a place where a `kill -9` must leave the
 * store consistent. When `REKEY_FAILPOINTS` (comma-separated names, read once at start) lists
 * the name, the process writes `failpoint:NAME` to stderr and blocks its thread for up to
 * 60 s, so a test can SIGKILL it at exactly that point. Otherwise it is a set lookup on an
 * empty set: nothing to pay in production.
 */
import { writeSync } from 'node:fs'

/** How long a hit failpoint blocks before the process carries on, ms. */
const BLOCK_MS = 60_000

const ENABLED: ReadonlySet<string> = new Set((process.env.REKEY_FAILPOINTS ?? '').split(',').map((s) => s.trim()).filter((s) => s !== ''))

/** Every crash point the lifecycle marks, for tests and docs/operations.md. */
export const FAILPOINTS = Object.freeze([
  'rotate:after-stage',
  'lifecycle:wait-for-acks',
  'rotate:promote-in-transaction',
  'rotate:after-promote',
  'finalize:in-transaction',
  'rollback:in-transaction',
  'emergency:in-transaction',
  'emergency:sweep-batch',
  'emergency:after-commit',
] as const)
export type FailpointName = (typeof FAILPOINTS)[number]

/** Blocks here when `REKEY_FAILPOINTS` names this point; returns at once otherwise. */
export function failpoint(name: FailpointName): void {
  if (ENABLED.size === 0 || !ENABLED.has(name)) return
  // Synchronous on purpose: the test must see the line before it kills, and nothing may run after.
  writeSync(2, `failpoint:${name}\n`)
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, BLOCK_MS)
}
