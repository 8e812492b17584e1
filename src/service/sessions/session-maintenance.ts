/**
 * Session work whose cost grows with the number of sessions, kept off every hot path:
 * - the emergency's sweep, which ends live sessions in bounded batches after the new keys and
 *   the global not-before have committed (they alone refuse every older token), resumable
 *   after a crash through a marker setting;
 * - the live-session counts of previous refresh keys, computed on the scheduler's lease holder
 *   and published with their time, so `/metrics` and `status` read one row instead of counting;
 * - pruning of ended families, used tokens past any overlap window and long-gone heartbeats.
 */
import type { KeyRecord } from '../../store/types.ts'
import type { PruneReport, SessionCursor, Store } from '../../store/store.ts'
import { failpoint } from '../failpoints.ts'

/** The setting marking an emergency sweep not yet finished: `{ at, reason }` (JSON). */
export const EMERGENCY_SWEEP_SETTING = 'auth.emergency_sweep'
/** The setting holding the published live-session counts: `{ at, counts: { kid: n } }` (JSON). */
export const LIVE_SESSIONS_SETTING = 'sessions.live_counts'

/**
 * Families one sweep transaction ends, about (PostgreSQL sizes its page ranges to it) or at
 * most (SQLite): a refresh waits for at most one such batch.
 */
export const SWEEP_BATCH = 5000
/** Sweep transactions run at once on PostgreSQL, on disjoint page ranges (one per core of a 2-core database). */
export const SWEEP_WORKERS = 2
/** Rows one prune transaction deletes at most, per kind. */
export const PRUNE_BATCH = 2000
/** Ended families are kept this long (for `rekey audit`-time investigation), ms: 1 day. */
export const PRUNE_FAMILIES_AFTER_MS = 86_400_000
/** Used tokens are kept past the longest overlap window REKEY_REFRESH_OVERLAP allows (300 s), ms. */
export const PRUNE_USED_AFTER_MS = 300_000 + 60_000
/** Heartbeats of instances not seen for this long are removed, ms: 1 day. */
export const PRUNE_INSTANCES_AFTER_MS = 86_400_000

/** Where an emergency sweep stands, for progress lines. */
export interface SweepProgress {
  readonly ended: number
  readonly batches: number
  readonly elapsedMs: number
  readonly done: boolean
}

/** A pending sweep, as the marker records it. */
export interface SweepMarker {
  readonly at: number
  readonly reason: string
}

export function parseSweepMarker(text: string | null): SweepMarker | null {
  if (text === null) return null
  try {
    const value = JSON.parse(text) as { at?: unknown, reason?: unknown }
    return typeof value.at === 'number' && Number.isFinite(value.at) ? { at: value.at, reason: typeof value.reason === 'string' ? value.reason : 'emergency' } : null
  } catch {
    return null
  }
}

/**
 * Ends every family created at or before `marker.at` that is still live, in batches of about
 * `batchSize` (on PostgreSQL, after the first batch, `workers` of them at once on disjoint
 * page ranges), then clears the marker if it is still this sweep's. Safe to run twice at once
 * (each batch only touches unrevoked rows) and to resume after a kill: a resumed sweep starts
 * over, and what it finds already ended costs it a read, not a write.
 */
export async function runSessionSweep(store: Store, marker: SweepMarker, opts: { now: () => number, batchSize?: number, workers?: number, onProgress?: (p: SweepProgress) => void }): Promise<number> {
  const started = Date.now()
  const limit = opts.batchSize ?? SWEEP_BATCH
  let ended = 0
  let batches = 0
  let running = 0
  const batch = async (after: SessionCursor | null): Promise<SessionCursor | null> => {
    const result = await store.endSessionsBatch({ at: marker.at, now: opts.now(), reason: marker.reason, after, limit })
    ended += result.ended
    batches++
    opts.onProgress?.({ ended, batches, elapsedMs: Date.now() - started, done: result.cursor === null && running <= 1 })
    return result.cursor
  }
  const walk = async (from: SessionCursor | null): Promise<void> => {
    running++
    try {
      for (let cursor = from; cursor !== null;) {
        failpoint('emergency:sweep-batch')
        cursor = await batch(cursor)
      }
    } finally {
      running--
    }
  }
  // The keys and the not-before are in: say so before the first batch.
  opts.onProgress?.({ ended: 0, batches: 0, elapsedMs: 0, done: false })
  running++
  const first = await batch(null)
  running--
  if (first !== null) {
    // An error is told once every worker has stopped: none runs on after the caller gave up.
    const walks = await Promise.allSettled(splitCursor(first, opts.workers ?? SWEEP_WORKERS).map(walk))
    const failed = walks.find((w) => w.status === 'rejected')
    if (failed !== undefined) throw failed.reason
  }
  await store.transaction(async (tx) => {
    const current = parseSweepMarker(await tx.getSetting(EMERGENCY_SWEEP_SETTING))
    if (current !== null && current.at === marker.at) await tx.setSetting(EMERGENCY_SWEEP_SETTING, null)
  })
  return ended
}

/** A page-range cursor cut into `parts` disjoint ranges (each worth a few batches); any other as it is. */
function splitCursor(cursor: SessionCursor, parts: number): SessionCursor[] {
  if (cursor.kind !== 'pages' || parts < 2 || cursor.end - cursor.page < parts * cursor.pages * 4) return [cursor]
  const size = Math.ceil((cursor.end - cursor.page) / parts)
  return Array.from({ length: parts }, (_, i) => ({ ...cursor, page: cursor.page + i * size, end: Math.min(cursor.end, cursor.page + (i + 1) * size) }))
    .filter((c) => c.page < c.end)
}

/**
 * Finishes an emergency sweep left unfinished (its process was killed), if any; how many
 * sessions it ended, or `null` when none was pending or the pending one is younger than
 * `minAgeMs` (its own process is probably still at it).
 */
export async function resumeSessionSweep(store: Store, now: () => number, minAgeMs = 30_000): Promise<number | null> {
  const marker = parseSweepMarker(await store.getSetting(EMERGENCY_SWEEP_SETTING))
  if (marker === null || now() - marker.at < minAgeMs) return null
  return runSessionSweep(store, marker, { now })
}

/** Published counts: which kids, how many live sessions each, and when they were counted. */
export interface LiveSessionCounts {
  readonly at: number
  readonly counts: ReadonlyMap<string, number>
}

export function parseLiveSessionCounts(text: string | null): LiveSessionCounts | null {
  if (text === null) return null
  try {
    const value = JSON.parse(text) as { at?: unknown, counts?: unknown }
    if (typeof value.at !== 'number' || typeof value.counts !== 'object' || value.counts === null) return null
    const counts = new Map<string, number>()
    for (const [kid, n] of Object.entries(value.counts)) if (typeof n === 'number' && Number.isFinite(n)) counts.set(kid, n)
    return { at: value.at, counts }
  } catch {
    return null
  }
}

/** The kids worth counting: previous refresh keys (what finalize waits on). */
export function countedKids(keys: readonly Pick<KeyRecord, 'kid' | 'purpose' | 'state'>[]): string[] {
  return keys.filter((k) => k.purpose === 'refresh' && k.state === 'previous').map((k) => k.kid)
}

/** Counts the previous refresh keys' live sessions and publishes them; what was published. */
export async function publishLiveSessionCounts(store: Store, now: number): Promise<LiveSessionCounts> {
  const kids = countedKids(await store.listKeys('refresh'))
  const found = await store.countLiveSessionsForKids(kids, now)
  // Every counted kid is published, zero included: a kid absent means "not counted yet".
  const counts = new Map(kids.map((kid) => [kid, found.get(kid) ?? 0]))
  await store.setSetting(LIVE_SESSIONS_SETTING, JSON.stringify({ at: now, counts: Object.fromEntries(counts) }))
  return { at: now, counts }
}

/**
 * The counts for `keys`' previous refresh keys: the published ones when they cover every such
 * key, else counted now (through the partial index) and published, so the next reader finds them.
 */
export async function liveSessionCounts(store: Store, keys: readonly Pick<KeyRecord, 'kid' | 'purpose' | 'state'>[], now: number): Promise<LiveSessionCounts> {
  const kids = countedKids(keys)
  const published = parseLiveSessionCounts(await store.getSetting(LIVE_SESSIONS_SETTING))
  if (published !== null && kids.every((kid) => published.counts.has(kid))) return published
  if (kids.length === 0) return { at: now, counts: new Map() }
  return publishLiveSessionCounts(store, now)
}

/** What one maintenance round pruned. */
export interface PruneTotals extends PruneReport {
  readonly instances: number
  readonly batches: number
}

/**
 * Prunes in bounded transactions until nothing is left or `budgetMs` is spent: ended families
 * (with their tokens), used tokens past any overlap window, heartbeats of instances long gone.
 */
export async function pruneSessions(store: Store, now: number, budgetMs: number, limit = PRUNE_BATCH): Promise<PruneTotals> {
  const started = Date.now()
  let families = 0
  let tokens = 0
  let batches = 0
  for (;;) {
    const round = await store.pruneSessionsBatch({ before: now - PRUNE_FAMILIES_AFTER_MS, usedBefore: now - PRUNE_USED_AFTER_MS, limit })
    families += round.families
    tokens += round.tokens
    batches++
    if ((round.families < limit && round.tokens < limit) || Date.now() - started >= budgetMs) break
  }
  const instances = await store.pruneInstances(now - PRUNE_INSTANCES_AFTER_MS)
  return { families, tokens, instances, batches }
}
