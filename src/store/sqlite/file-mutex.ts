/**
 * One async mutex per database file, shared by every SQLite store of this process.
 *
 * `node:sqlite` is synchronous but a store transaction spans awaits. Two connections of one
 * process must not interleave there: the second `BEGIN IMMEDIATE` would wait (blocking the
 * thread) for a lock that only the first, now unable to run, could release. Other processes
 * have their own event loop and simply wait on SQLite's busy timeout.
 */

/** A FIFO mutex; the holder hands the lock straight to the next waiter. */
export class Mutex {
  #locked = false
  readonly #waiters: Array<() => void> = []

  async run<T>(fn: () => Promise<T> | T): Promise<T> {
    if (this.#locked) await new Promise<void>((resolve) => this.#waiters.push(resolve))
    else this.#locked = true
    try {
      return await fn()
    } finally {
      const next = this.#waiters.shift()
      if (next === undefined) this.#locked = false
      else next()
    }
  }
}

const mutexes = new Map<string, { mutex: Mutex, users: number }>()

/** The mutex of a database file (by resolved path); pair with {@link releaseFileMutex}. */
export function acquireFileMutex(path: string): Mutex {
  let entry = mutexes.get(path)
  if (entry === undefined) {
    entry = { mutex: new Mutex(), users: 0 }
    mutexes.set(path, entry)
  }
  entry.users++
  return entry.mutex
}

export function releaseFileMutex(path: string): void {
  const entry = mutexes.get(path)
  if (entry !== undefined && --entry.users <= 0) mutexes.delete(path)
}
