/**
 * Rewrap: every value of an older data key in one column re-encrypted under the current key.
 *
 * Keyset pagination in key order; each batch is written in one statement or transaction,
 * and a row is written only if it still holds the value read, so a concurrent application
 * write always wins (the row is read again and, if it is still under an old key, retried).
 * After each batch the position and the counts so far are saved in rekey's store: a run
 * killed at any point resumes at the last saved batch (a batch written but not yet saved is
 * read again, finds its rows under the current key, and counts them once).
 */
import type { Cipher } from '../../core/cipher.ts'
import { Cipher as CipherClass } from '../../core/cipher.ts'
import type { RewrapProgress } from '../../service/data-keys/crypt-columns.ts'
import { rowAad, type AppRow, type AppTable, type RowUpdate } from './app-table.ts'

/** Where progress is kept between batches (rekey's store). */
export interface ProgressKeeper {
  load(): Promise<RewrapProgress | null>
  save(progress: RewrapProgress | null): Promise<void>
}

/** One progress event: after each batch. */
export interface RewrapTick {
  readonly rowsDone: number
  readonly rowsTotal: number
  readonly rewrapped: number
  readonly failed: number
  readonly conflicts: number
  readonly resumed: boolean
}

/** Options of {@link rewrapColumn}. */
export interface RewrapOptions {
  readonly table: AppTable
  readonly cipher: Cipher
  readonly keeper: ProgressKeeper
  /** Rows per batch. Default 2000. */
  readonly batchSize?: number
  readonly onTick?: (tick: RewrapTick) => void
  /** Clock for `startedAt`; default `Date.now`. */
  readonly now?: () => number
}

/** What a finished rewrap did, and the counts per kid it ends with. */
export interface RewrapResult extends RewrapProgress {
  readonly resumedFrom: number | null
  /** Keys (as text) of up to 20 rows whose value did not decrypt. */
  readonly failedKeys: readonly string[]
}

/** Attempts per row when the application keeps changing it under rewrap. */
const MAX_ATTEMPTS = 5

interface Tally {
  kids: Record<string, number>
  other: number
  nulls: number
  rewrapped: number
  failed: number
  conflicts: number
  failedKeys: string[]
}

function kidOf(value: string): string | undefined {
  try {
    return CipherClass.kidOf(value)
  } catch {
    return undefined
  }
}

const add = (t: Tally, kid: string): void => { t.kids[kid] = (t.kids[kid] ?? 0) + 1 }

const emptyTally = (): Tally => ({ kids: {}, other: 0, nulls: 0, rewrapped: 0, failed: 0, conflicts: 0, failedKeys: [] })

function merge(into: Tally, from: Tally): void {
  for (const [kid, n] of Object.entries(from.kids)) into.kids[kid] = (into.kids[kid] ?? 0) + n
  into.other += from.other
  into.nulls += from.nulls
  into.rewrapped += from.rewrapped
  into.failed += from.failed
  into.conflicts += from.conflicts
  for (const key of from.failedKeys) if (into.failedKeys.length < 20) into.failedKeys.push(key)
}

/** The promise, with its rejection marked as handled here: it is awaited later, in order. */
function observed<T>(promise: Promise<T>): Promise<T> {
  promise.catch(() => undefined)
  return promise
}

/**
 * Plans one row: counted as it stands (null, other format, current key), or a new value
 * to write. A value that does not decrypt is counted under its kid and reported.
 */
function plan(row: AppRow, cipher: Cipher, t: Tally): RowUpdate | undefined {
  if (row.value === null) {
    t.nulls += 1
    return undefined
  }
  const kid = kidOf(row.value)
  if (kid === undefined) {
    t.other += 1
    return undefined
  }
  if (kid === cipher.currentKid) {
    add(t, kid)
    return undefined
  }
  const aad = rowAad(row.aad)
  try {
    return { key: row.key, old: row.value, value: cipher.rewrap(row.value, aad === undefined ? undefined : { aad }) }
  } catch {
    t.failed += 1
    add(t, kid)
    if (t.failedKeys.length < 20) t.failedKeys.push(String(row.key))
    return undefined
  }
}

/** Writes a batch's updates; rows changed meanwhile are read again and planned again. */
async function writeAll(table: AppTable, cipher: Cipher, updates: RowUpdate[], t: Tally): Promise<void> {
  let pending = updates
  for (let attempt = 1; pending.length > 0; attempt++) {
    const written = await table.writeBatch(pending)
    const lost = pending.filter((u) => !written.has(String(u.key)))
    for (let i = 0; i < pending.length - lost.length; i++) {
      add(t, cipher.currentKid)
      t.rewrapped += 1
    }
    if (lost.length === 0) return
    t.conflicts += lost.length
    const fresh = await table.readRows(lost.map((u) => u.key))
    if (attempt === MAX_ATTEMPTS) {
      // Still changing: counted as they stand now; the next rewrap takes them.
      for (const row of fresh) {
        const kid = row.value === null ? undefined : kidOf(row.value)
        if (row.value === null) t.nulls += 1
        else if (kid === undefined) t.other += 1
        else add(t, kid)
      }
      return
    }
    pending = fresh.map((row) => plan(row, cipher, t)).filter((u): u is RowUpdate => u !== undefined)
  }
}

/** Rewraps one column, resuming a saved run under the same target key. */
export async function rewrapColumn(options: RewrapOptions): Promise<RewrapResult> {
  const { table, cipher, keeper } = options
  const batchSize = options.batchSize ?? 2000
  const now = options.now ?? Date.now
  const total = (await table.countByKid()).rows
  const saved = await keeper.load()
  const resume = saved !== null && saved.targetKid === cipher.currentKid ? saved : null
  const t: Tally = {
    kids: { ...(resume?.kids ?? {}) },
    other: resume?.other ?? 0,
    nulls: resume?.nulls ?? 0,
    rewrapped: resume?.rewrapped ?? 0,
    failed: resume?.failed ?? 0,
    conflicts: resume?.conflicts ?? 0,
    failedKeys: [],
  }
  let after: unknown = resume?.after
  let rowsDone = resume?.rowsDone ?? 0
  const startedAt = resume?.startedAt ?? new Date(now()).toISOString()
  const snapshot = (): RewrapProgress => ({
    targetKid: cipher.currentKid, after, kids: { ...t.kids }, other: t.other, nulls: t.nulls, rowsDone,
    rewrapped: t.rewrapped, failed: t.failed, conflicts: t.conflicts, startedAt,
  })
  // The next batch is read while earlier ones are written (up to table.parallelWrites at
  // once, on disjoint key ranges). Batches are settled in key order, each with its own
  // tally, so the saved position never runs ahead of a batch that is not written yet.
  const inflight: Array<{ rows: number, last: unknown, tally: Tally, done: Promise<void> }> = []
  const settleHead = async (): Promise<void> => {
    const head = inflight.shift()
    if (head === undefined) return
    await head.done
    merge(t, head.tally)
    after = head.last
    rowsDone += head.rows
    await keeper.save(snapshot())
    options.onTick?.({ rowsDone, rowsTotal: Math.max(total, rowsDone), rewrapped: t.rewrapped, failed: t.failed, conflicts: t.conflicts, resumed: resume !== null })
  }
  let reading = observed(table.readBatch(after, batchSize))
  try {
    for (;;) {
      const rows = await reading
      if (rows.length === 0) break
      const last = (rows[rows.length - 1] as AppRow).key
      reading = observed(table.readBatch(last, batchSize))
      const tally = emptyTally()
      const updates = rows.map((row) => plan(row, cipher, tally)).filter((u): u is RowUpdate => u !== undefined)
      inflight.push({ rows: rows.length, last, tally, done: observed(writeAll(table, cipher, updates, tally)) })
      while (inflight.length >= Math.max(1, table.parallelWrites)) await settleHead()
    }
    while (inflight.length > 0) await settleHead()
  } catch (err) {
    // Nothing is left running against the database when the error reaches the caller.
    await Promise.allSettled([reading, ...inflight.map((b) => b.done)])
    throw err
  }
  const result = { ...snapshot(), resumedFrom: resume === null ? null : resume.rowsDone, failedKeys: t.failedKeys }
  await keeper.save(null)
  return result
}
