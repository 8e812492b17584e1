/**
 * Usage evidence from the store's per-minute counters, for finalize (may the old key go?),
 * `rekey status` and the dashboard (who verifies with which key, and when each process last
 * reported). The rules are in `core/usage-evidence.ts`; this file reads and assembles.
 */
import { CIPHER_INSTANCE_PREFIX } from '../../core/data-keys.ts'
import {
  processNameOf, recentUse, shareEvidence, SHARE_STAY_MS, type RecentUse, type ShareEvidence, type UsageRow,
} from '../../core/usage-evidence.ts'
import type { Store } from '../../store/store.ts'
import type { InstanceHeartbeat } from '../../store/types.ts'
import { REPORT_MARKER_KID } from './usage-report.ts'

const MINUTE_MS = 60_000
const HOUR_MS = 3_600_000

/** What finalize's evidence says for the previous keys of some purposes. */
export interface FinalizeEvidence {
  /** Verifications of the previous keys in the last 5 minutes, every reporting process. */
  readonly recentUse: RecentUse
  /** Per purpose with previous keys, rule 2 (`null` without a threshold). */
  readonly share: ReadonlyArray<{ readonly purpose: string, readonly kids: readonly string[], readonly evidence: ShareEvidence | null }>
  /** True when a threshold was given and every purpose satisfies it. */
  readonly shareSatisfied: boolean
}

/** A key the evidence reads: the store's key record fits. */
interface EvidenceKey { readonly kid: string, readonly purpose: string, readonly state: string, readonly demotedAt: number | null }

/** Rows over the last 16 minutes, enough for both rules. */
export function evidenceRows(store: Pick<Store, 'usageBuckets'>, now: number): Promise<UsageRow[]> {
  return store.usageBuckets(now - SHARE_STAY_MS - MINUTE_MS)
}

/** The evidence about retiring the previous keys of `purposes` now. */
export function finalizeEvidenceOf(rows: readonly UsageRow[], keys: readonly EvidenceKey[], purposes: readonly string[], now: number, threshold?: number): FinalizeEvidence {
  const previous = keys.filter((k) => purposes.includes(k.purpose) && k.state === 'previous')
  const use = recentUse(rows, new Set(previous.map((k) => k.kid)), now)
  const share = [...new Set(previous.map((k) => k.purpose))].map((purpose) => {
    const old = previous.filter((k) => k.purpose === purpose)
    const demoted = old.map((k) => k.demotedAt)
    return {
      purpose,
      kids: old.map((k) => k.kid),
      evidence: threshold === undefined
        ? null
        // The newest demotion counts: the window must lie wholly after the last key stopped signing.
        : shareEvidence(rows, new Set(old.map((k) => k.kid)), new Set(keys.filter((k) => k.purpose === purpose).map((k) => k.kid)), now, threshold,
          demoted.includes(null) ? null : Math.max(...(demoted as number[]))),
    }
  })
  return { recentUse: use, share, shareSatisfied: threshold !== undefined && share.length > 0 && share.every((s) => s.evidence?.satisfied === true) }
}

/** A process that reported usage in the last hour. */
export interface Reporter {
  readonly name: string
  readonly instanceId: string
  /** `rekey serve` or a library app (`opts.usage`). */
  readonly kind: 'rekey-serve' | 'library'
  /** When it last reported (ISO): the heartbeat of a live instance, else the minute of its last counters. */
  readonly lastReportAt: string
  readonly verificationsLastHour: number
}

/** Per kid, which processes verified with it over the last hour. */
export interface KeyProcesses { readonly [kid: string]: ReadonlyArray<{ readonly name: string, readonly count: number }> }

/** Who reported in the last hour, and the processes behind each kid's verifications. */
export async function usageByProcess(store: Store, now: number, instances: readonly InstanceHeartbeat[]): Promise<{ reporters: Reporter[], keyProcesses: KeyProcesses }> {
  const rows = await store.usageBuckets(now - HOUR_MS)
  const seen = new Map<string, { last: number, count: number }>()
  const perKid = new Map<string, Map<string, number>>()
  for (const r of rows) {
    const s = seen.get(r.instanceId) ?? { last: 0, count: 0 }
    // A minute's counters are written during or after it: its end is the latest it can stand for.
    s.last = Math.max(s.last, Math.min(now, r.bucketStart + MINUTE_MS))
    if (r.kid !== REPORT_MARKER_KID && r.result === 'ok') {
      s.count += r.count
      const names = perKid.get(r.kid) ?? new Map<string, number>()
      const name = processNameOf(r.instanceId)
      names.set(name, (names.get(name) ?? 0) + r.count)
      perKid.set(r.kid, names)
    }
    seen.set(r.instanceId, s)
  }
  for (const i of instances) {
    // A cipher process is an instance (rotations wait for it), not a verifier.
    if (i.instanceId.startsWith(CIPHER_INSTANCE_PREFIX)) continue
    const s = seen.get(i.instanceId) ?? { last: 0, count: 0 }
    s.last = Math.max(s.last, i.lastSeen)
    seen.set(i.instanceId, s)
  }
  const reporters = [...seen].map(([instanceId, s]): Reporter => ({
    name: processNameOf(instanceId), instanceId, kind: instanceId.includes('/') ? 'library' : 'rekey-serve',
    lastReportAt: new Date(s.last).toISOString(), verificationsLastHour: s.count,
  })).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
  const keyProcesses: Record<string, { name: string, count: number }[]> = {}
  for (const [kid, names] of perKid) keyProcesses[kid] = [...names].map(([name, count]) => ({ name, count })).sort((a, b) => b.count - a.count)
  return { reporters, keyProcesses }
}
