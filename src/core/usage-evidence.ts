/**
 * Finalize on evidence: what the per-minute verification counters of every reporting process
 * (`rekey serve` instances and library apps with `opts.usage`) say about an old key. Pure:
 * the caller reads the counters; times are epoch ms.
 *
 * Two rules. 1) Recent use: finalize is refused while any process verified a token of the
 * old key in the last 5 minutes (it would cut those tokens), unless forced. 2) Share below a
 * threshold (`--when-share-below 5%`): finalize may go before the time rule once the old
 * key's share of its purpose's verifications has stayed below the threshold in every minute
 * of the last 15, with reports covering the whole window (no data is not evidence).
 */

/** How far back "recently used" looks, ms. */
export const RECENT_USE_MS = 5 * 60_000
/** How long the share must stay below the threshold, ms. */
export const SHARE_STAY_MS = 15 * 60_000
const MINUTE_MS = 60_000

/** A per-minute counter, as the store keeps it. */
export interface UsageRow {
  readonly kid: string
  readonly instanceId: string
  readonly bucketStart: number
  readonly result: string
  readonly count: number
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-/i

/**
 * The name a reporting process goes by: a library app's `usage.name` (its reporter id is
 * `NAME/HOST/PID`); `rekey-serve#` and the start of the instance id for `rekey serve`.
 */
export function processNameOf(instanceId: string): string {
  const slash = instanceId.indexOf('/')
  if (slash > 0) return instanceId.slice(0, slash)
  return UUID.test(instanceId) ? `rekey-serve#${instanceId.slice(0, 8)}` : instanceId
}

/** Verifications of some kids in the last 5 minutes, per process name. */
export interface RecentUse {
  readonly total: number
  readonly processes: ReadonlyArray<{ readonly name: string, readonly count: number }>
}

const minuteOf = (ms: number): number => Math.floor(ms / MINUTE_MS) * MINUTE_MS

/** Successful verifications by `kids` in the minutes overlapping the last 5 minutes. */
export function recentUse(rows: readonly UsageRow[], kids: ReadonlySet<string>, now: number): RecentUse {
  const since = minuteOf(now - RECENT_USE_MS)
  const byName = new Map<string, number>()
  let total = 0
  for (const row of rows) {
    if (row.result !== 'ok' || row.bucketStart < since || !kids.has(row.kid) || row.count <= 0) continue
    total += row.count
    const name = processNameOf(row.instanceId)
    byName.set(name, (byName.get(name) ?? 0) + row.count)
  }
  const processes = [...byName].map(([name, count]) => ({ name, count })).sort((a, b) => b.count - a.count || (a.name < b.name ? -1 : 1))
  return { total, processes }
}

/** `orders-api (30) and rekey-serve#1a2b3c4d (7)`. */
export function describeProcesses(use: RecentUse): string {
  const parts = use.processes.map((p) => `${p.name} (${p.count})`)
  return parts.length <= 1 ? parts.join('') : `${parts.slice(0, -1).join(', ')} and ${parts[parts.length - 1]}`
}

/** The refusal of rule 1, naming how many tokens and where. */
export function recentUseMessage(use: RecentUse, what = 'the old key'): string {
  return `${what} verified ${use.total} token(s) in the last 5 min on ${describeProcesses(use)}; finalize would cut them`
}

/** What rule 2 found. */
export interface ShareEvidence {
  readonly satisfied: boolean
  /** Why it is or is not satisfied, in words. */
  readonly reason: string
  /** The highest per-minute share of the old kids over the window (0..1), `null` without data. */
  readonly maxShare: number | null
  /** Verifications of the purpose's keys in the window, and of the old kids among them. */
  readonly total: number
  readonly old: number
}

const pct = (share: number): string => `${(Math.round(share * 1000) / 10).toString()}%`

/**
 * Rule 2 for one purpose: `oldKids` (the previous keys) among `purposeKids` (every key of the
 * purpose), demoted at `demotedAt`. `rows` must reach back 16 minutes.
 */
export function shareEvidence(rows: readonly UsageRow[], oldKids: ReadonlySet<string>, purposeKids: ReadonlySet<string>, now: number, threshold: number, demotedAt: number | null): ShareEvidence {
  const none = { maxShare: null, total: 0, old: 0 }
  if (demotedAt === null || now - demotedAt < SHARE_STAY_MS) {
    return { satisfied: false, reason: 'the old key stopped signing less than 15 minutes ago', ...none }
  }
  const start = now - SHARE_STAY_MS
  // Reports must cover the start of the window: a process that only began reporting a minute ago is no evidence.
  const covered = rows.some((r) => r.bucketStart <= minuteOf(start) + MINUTE_MS && r.bucketStart >= minuteOf(start) - MINUTE_MS)
  if (!covered) return { satisfied: false, reason: 'no process reported usage 15 minutes ago: there is no evidence over the whole window yet', ...none }
  const minutes = new Map<number, { total: number, old: number }>()
  for (const r of rows) {
    if (r.result !== 'ok' || r.bucketStart < minuteOf(start) || !purposeKids.has(r.kid)) continue
    const m = minutes.get(r.bucketStart) ?? { total: 0, old: 0 }
    m.total += r.count
    if (oldKids.has(r.kid)) m.old += r.count
    minutes.set(r.bucketStart, m)
  }
  let total = 0
  let old = 0
  let maxShare = 0
  for (const m of minutes.values()) {
    total += m.total
    old += m.old
    if (m.total > 0) maxShare = Math.max(maxShare, m.old / m.total)
  }
  if (total === 0) return { satisfied: false, reason: 'no verification was reported in the last 15 minutes', ...none }
  if (maxShare >= threshold) {
    return { satisfied: false, reason: `the old key's share reached ${pct(maxShare)} in a minute of the last 15 (threshold ${pct(threshold)})`, maxShare, total, old }
  }
  return { satisfied: true, reason: `the old key's share stayed below ${pct(threshold)} for 15 minutes (at most ${pct(maxShare)}; ${old} of ${total} verifications)`, maxShare, total, old }
}
