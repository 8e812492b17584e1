/**
 * One rewrap per column at a time: a lease in rekey's store (`rewrap.<column id>`), taken
 * before the first batch, renewed with every saved batch and on a timer, given up at the end.
 * A second rewrap of the same column is refused with `ERR_CONFLICT` while the holder lives.
 *
 * A holder killed with kill -9 gives nothing up. Its lease is taken over when it has expired,
 * or at once when the holder ran on this host and its process is gone (the holder's host and
 * pid are kept beside the lease, in the setting `crypt.rewrap-lock.<column id>`). Taking over
 * releases the dead holder's lease by name and holder, then acquires it: of two runs taking
 * over together, one wins (the acquire is one atomic statement).
 */
import { randomBytes } from 'node:crypto'
import os from 'node:os'
import { RekeyError } from '../../core/errors.ts'
import type { Store } from '../../store/store.ts'

/** How long a lease lasts without renewal, in ms. Default 30 s; renewed every third of it. */
export const REWRAP_LEASE_TTL_MS = 30_000

/** Who holds a rewrap lease, as recorded beside it. */
export interface LockHolder {
  readonly host: string
  readonly pid: number
  readonly token: string
  readonly since: string
}

/** The held lock: renewed by `renew` (throws `ERR_CONFLICT` once lost), released by `release`. */
export interface RewrapLock {
  /** Renews the lease inside `tx` (a store transaction); throws `ERR_CONFLICT` if another run took it. */
  renewIn(tx: Pick<Store, 'tryAcquireLease'>): Promise<void>
  release(): Promise<void>
}

/** Options of {@link acquireRewrapLock}. */
export interface LockOptions {
  /** Lease length in ms; default {@link REWRAP_LEASE_TTL_MS}. */
  readonly ttlMs?: number
  /** Clock; default `Date.now`. */
  readonly now?: () => number
  /** Whether a pid on this host is a live process; default `process.kill(pid, 0)`. */
  readonly isAlive?: (pid: number) => boolean
}

const leaseName = (id: string): string => `rewrap.${id}`
const holderSetting = (id: string): string => `crypt.rewrap-lock.${id}`
const holderText = (h: LockHolder): string => `${h.host}:${h.pid}:${h.token}`

/** Whether `pid` is a live process on this host (EPERM counts: another user's). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    // EPERM: a process of another user has that pid: alive.
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

async function readHolder(store: Store, id: string): Promise<LockHolder | null> {
  const text = await store.getSetting(holderSetting(id))
  if (text === null) return null
  try {
    return JSON.parse(text) as LockHolder
  } catch {
    return null
  }
}

/**
 * Takes the rewrap lock of column `id` (its `label`, `table.column`, for messages), or throws
 * `ERR_CONFLICT` naming the live holder. The lease is renewed on a timer until released.
 */
export async function acquireRewrapLock(store: Store, id: string, label: string, options: LockOptions = {}): Promise<RewrapLock> {
  const ttlMs = options.ttlMs ?? REWRAP_LEASE_TTL_MS
  const now = options.now ?? Date.now
  const isAlive = options.isAlive ?? processAlive
  const me: LockHolder = { host: os.hostname(), pid: process.pid, token: randomBytes(8).toString('hex'), since: new Date(now()).toISOString() }
  const name = leaseName(id)
  const take = (): Promise<boolean> => store.transaction(async (tx) => {
    if (!await tx.tryAcquireLease(name, holderText(me), ttlMs, now())) return false
    await tx.setSetting(holderSetting(id), JSON.stringify(me))
    return true
  })
  if (!await take()) {
    const holder = await readHolder(store, id)
    const gone = holder !== null && holder.host === me.host && holder.pid !== me.pid && !isAlive(holder.pid)
    if (!gone || !await store.releaseLease(name, holderText(holder)) || !await take()) {
      const who = holder === null ? 'another run' : `process ${holder.pid} on ${holder.host}, since ${holder.since}`
      throw new RekeyError('ERR_CONFLICT', `another rewrap of ${label} is running (${who}): only one runs per column; wait for it to finish (a run that died on another host is taken over ${Math.round(ttlMs / 1000)} s after its last batch)`)
    }
  }
  let lost = false
  const renewIn = async (tx: Pick<Store, 'tryAcquireLease'>): Promise<void> => {
    if (lost || !await tx.tryAcquireLease(name, holderText(me), ttlMs, now())) {
      lost = true
      throw new RekeyError('ERR_CONFLICT', `the rewrap lock of ${label} was taken over by another run (this run stalled for over ${Math.round(ttlMs / 1000)} s): this run stops; the other one continues`)
    }
  }
  const timer = setInterval(() => { renewIn(store).catch(() => undefined) }, Math.max(1000, Math.floor(ttlMs / 3)))
  timer.unref()
  return {
    renewIn,
    async release() {
      clearInterval(timer)
      if (lost) return
      await store.transaction(async (tx) => {
        if (await tx.releaseLease(name, holderText(me))) await tx.setSetting(holderSetting(id), null)
      })
    },
  }
}
