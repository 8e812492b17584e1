/**
 * What a backup, a restore drill or a restore must undo when it is interrupted: the temporary
 * directory holding the decrypted snapshot, the temporary verify database, the client tools
 * still running. Each part registers its cleanup while it holds the thing; the CLI's signal
 * handler (`src/cli/interruptible.ts`) runs them all, newest first (children before the
 * database they write to, the database before the directory), then exits.
 *
 * A kill -9 runs nothing: `leftovers.ts` finds and removes what a dead run left.
 */

interface Pending {
  /** What is removed, named for the operator (a path, a database): never a secret. */
  readonly what: string | null
  readonly cleanup: () => Promise<void> | void
}

const pending: Pending[] = []
let interrupted: string | null = null

/** Thrown by {@link onInterrupt} once an interrupt has begun: the operation must stop. */
export class InterruptedError extends Error {
  constructor(signal: string) {
    super(`interrupted by ${signal}`)
    this.name = 'InterruptedError'
  }
}

/**
 * Registers `cleanup` until the returned function is called. After an interrupt has begun,
 * `cleanup` runs at once and InterruptedError is thrown: nothing new may outlive the process.
 */
export function onInterrupt(what: string | null, cleanup: () => Promise<void> | void): () => void {
  if (interrupted !== null) {
    void Promise.resolve().then(cleanup).catch(() => {})
    throw new InterruptedError(interrupted)
  }
  const entry: Pending = { what, cleanup }
  pending.push(entry)
  return () => {
    const at = pending.indexOf(entry)
    if (at >= 0) pending.splice(at, 1)
  }
}

/** The signal an interrupt began with, or `null`. */
export function interruptSignal(): string | null {
  return interrupted
}

/**
 * Runs every registered cleanup, newest first, each at most once; returns the names of what
 * was removed, and of what could not be (with why, never a secret).
 */
export async function cleanUpInterrupted(signal: string): Promise<{ removed: string[], failed: string[] }> {
  interrupted ??= signal
  const removed: string[] = []
  const failed: string[] = []
  while (pending.length > 0) {
    const entry = pending.pop() as Pending
    try {
      await entry.cleanup()
      if (entry.what !== null) removed.push(entry.what)
    } catch (err) {
      if (entry.what !== null) failed.push(`${entry.what} (${(err as Error).message})`)
    }
  }
  return { removed, failed }
}
