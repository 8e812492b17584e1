/**
 * What operators see of managed keys and instances: the views `rekey status`, `GET
 * /api/admin/keys` and `GET /api/admin/status` answer with. Never key material.
 */
import { DATA_KEY_PURPOSE } from '../../core/data-keys.ts'
import type { CadencePolicy } from '../../core/cadence.ts'
import { finalizeCheck, phaseOf, type RotationPhase, type RotationPolicy } from '../../core/rotation-rules.ts'
import type { Store } from '../../store/store.ts'
import type { InstanceHeartbeat, KeyRecord } from '../../store/types.ts'
import { dueReport } from '../inventory/inventory.ts'
import { KEY_PURPOSES } from './keys.ts'
import { liveSessionCounts } from '../sessions/session-maintenance.ts'

/** A key as operators see it: times in ISO-8601, never material. */
export interface KeyView {
  readonly kid: string
  readonly purpose: string
  readonly alg: string
  readonly state: KeyRecord['state']
  readonly createdAt: string
  readonly activatedAt: string | null
  readonly demotedAt: string | null
  readonly retireAfter: string | null
  readonly retiredAt: string | null
  readonly revokedAt: string | null
  readonly revokeReason: string | null
}

const isoOrNull = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString())

export function keyView(k: KeyRecord): KeyView {
  return {
    kid: k.kid, purpose: k.purpose, alg: k.alg, state: k.state, createdAt: new Date(k.createdAt).toISOString(),
    activatedAt: isoOrNull(k.activatedAt), demotedAt: isoOrNull(k.demotedAt), retireAfter: isoOrNull(k.retireAfter),
    retiredAt: isoOrNull(k.retiredAt), revokedAt: isoOrNull(k.revokedAt), revokeReason: k.revokeReason,
  }
}

/** A key in the status report, with its use. */
export interface KeyStatus extends KeyView {
  /** Verifications naming this kid over the last hour, every instance and result. */
  readonly verificationsLastHour: number
  /** Its share of its purpose's verifications over the last hour, 0..1 (0 when there were none). */
  readonly share: number
  /**
   * For previous refresh keys (what finalize waits on): live sessions whose refresh token it
   * signed, as counted at the report's `liveSessionsCountedAt`. `null` for other keys: counting
   * the current key's sessions would read every session.
   */
  readonly liveSessions: number | null
  /** For previous keys: when finalize may retire it (ISO), and whether that is now. */
  readonly finalizeSafeAt: string | null
  readonly finalizeSafe: boolean | null
}

/** An instance in the status report. */
export interface InstanceStatus {
  readonly instanceId: string
  readonly hostname: string
  readonly pid: number
  /** The key-set version it has loaded. */
  readonly keysetVersion: number
  /** True when it has loaded the store's key-set version. */
  readonly upToDate: boolean
  readonly startedAt: string
  readonly lastSeen: string
}

/** `rekey status` and `GET /api/admin/status`. */
export interface StatusReport {
  readonly mode: 'managed'
  readonly store: string
  readonly keysetVersion: number
  readonly at: string
  readonly secrets: ReadonlyArray<{ readonly secret: string, readonly phase: RotationPhase, readonly keys: readonly KeyStatus[] }>
  readonly instances: readonly InstanceStatus[]
  /** When the live-session counts were taken (ISO; published by the scheduler's lease holder). */
  readonly liveSessionsCountedAt: string
  /** Tracked secrets due or overdue within 7 days (as `rekey due --within 7d`), times ISO. */
  readonly due: ReadonlyArray<{ readonly name: string, readonly kind: string, readonly status: string, readonly dueAt: string | null, readonly lastRotatedAt: string | null }>
}

export function instanceStatus(i: InstanceHeartbeat, version: number): InstanceStatus {
  return {
    instanceId: i.instanceId, hostname: i.hostname, pid: i.pid, keysetVersion: i.keysetVersion, upToDate: i.keysetVersion >= version,
    startedAt: new Date(i.startedAt).toISOString(), lastSeen: new Date(i.lastSeen).toISOString(),
  }
}

const HOUR_MS = 3_600_000
const DUE_WITHIN_MS = 7 * 86_400_000

/** Reads keys, usage, sessions and instances and puts them together. */
export async function statusReport(store: Store, policy: RotationPolicy, now: number, liveWindowMs: number, cadence: CadencePolicy): Promise<StatusReport> {
  const [keyset, usage, instances, due] = await Promise.all([
    store.getKeyset(),
    store.usageSince(now - HOUR_MS),
    store.listInstances(now - liveWindowMs),
    dueReport(store, cadence, now, DUE_WITHIN_MS),
  ])
  const published = await liveSessionCounts(store, keyset.keys, now)
  const live = published.counts
  const perKid = new Map<string, number>()
  for (const row of usage) perKid.set(row.kid, (perKid.get(row.kid) ?? 0) + row.count)
  const purposes = [...new Set<string>([...KEY_PURPOSES, ...keyset.keys.map((k) => k.purpose)])]
  const secrets = purposes.map((purpose) => {
    const keys = keyset.keys.filter((k) => k.purpose === purpose)
    const total = keys.reduce((sum, k) => sum + (perKid.get(k.kid) ?? 0), 0)
    return {
      secret: purpose,
      phase: phaseOf(keyset.keys, purpose),
      keys: keys.map((k): KeyStatus => {
        // A data key's finalize is judged on its column counts (rekey status lists them), never on time.
        const check = k.state === 'previous' && k.purpose !== DATA_KEY_PURPOSE ? finalizeCheck(k, now, policy, live) : null
        const verifications = perKid.get(k.kid) ?? 0
        return {
          ...keyView(k),
          verificationsLastHour: verifications,
          share: total === 0 ? 0 : Math.round((verifications / total) * 1000) / 1000,
          liveSessions: k.purpose === 'refresh' && k.state === 'previous' ? live.get(k.kid) ?? 0 : null,
          finalizeSafeAt: check === null || !Number.isFinite(check.safeAt) ? null : new Date(check.safeAt).toISOString(),
          finalizeSafe: check === null ? null : check.safe,
        }
      }),
    }
  }).filter((s) => s.keys.length > 0)
  return {
    mode: 'managed',
    store: store.location,
    keysetVersion: keyset.version,
    at: new Date(now).toISOString(),
    secrets,
    instances: instances.map((i) => instanceStatus(i, keyset.version)),
    liveSessionsCountedAt: new Date(published.at).toISOString(),
    due: due.filter((d) => d.status !== 'ok').map((d) => ({
      name: d.name, kind: d.kind, status: d.status, dueAt: isoOrNull(d.dueAt), lastRotatedAt: isoOrNull(d.lastRotatedAt),
    })),
  }
}
