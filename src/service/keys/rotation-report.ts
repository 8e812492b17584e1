/**
 * What the key-rotation operations ({@link KeyRotation} in `rotation.ts`) answer: one report
 * per operation, the usage part of `status`, and finalize's refusal with its usage evidence.
 * Reports never carry key material: kids, purposes, states, counts and instants only.
 */
import { RekeyError } from '../../core/errors.ts'
import type { FinalizeCheck, KeyChange } from '../../core/rotation-rules.ts'
import { recentUseMessage } from '../../core/usage-evidence.ts'
import type { Store } from '../../store/store.ts'
import { evidenceRows, finalizeEvidenceOf, usageByProcess, type FinalizeEvidence, type KeyProcesses, type Reporter } from '../usage/usage-evidence.ts'
import type { InstanceStatus } from './key-views.ts'
import { KEY_PURPOSES, type ServiceKeyPurpose } from './keys.ts'

/** A key staged by rotate. */
export interface StagedKey {
  readonly purpose: ServiceKeyPurpose
  readonly kid: string
  /** True when the key was already staged (a second rotate finishing the first). */
  readonly resumed: boolean
}

/** What rotate did. `promoted: false` means it timed out waiting: the key stays `next`. */
export interface RotateReport {
  readonly secrets: readonly ServiceKeyPurpose[]
  readonly staged: readonly StagedKey[]
  readonly hard: boolean
  readonly promoted: boolean
  /** True once every live instance has loaded the promoted key set: the new key signs everywhere. */
  readonly signingEverywhere: boolean
  readonly keysetVersion: number
  readonly waitedMs: number
  /** Live instances and whether each had loaded the staged key set. */
  readonly instances: readonly (InstanceStatus & { readonly acknowledged: boolean })[]
  /** For each purpose, the keys it changed at promotion. */
  readonly changes: readonly { readonly kid: string, readonly purpose: string, readonly from: string, readonly to: string }[]
  /** When finalize becomes safe (ISO), once promoted gracefully. */
  readonly finalizeSafeAt: string | null
  /** Until when the staged asymmetric key is published before it signs (ISO); `null` when it is not delayed (HS256, delay 0). */
  readonly publishedUntil?: string | null
  /** What an unpromoted rotation waits for: the instances' acknowledgements, or the publication delay (`noWait`). */
  readonly waitingFor?: 'instances' | 'publication' | null
}

/** What finalize did. */
export interface FinalizeReport {
  readonly changed: boolean
  readonly forced: boolean
  readonly retired: readonly { readonly kid: string, readonly purpose: string }[]
  readonly checks: readonly FinalizeCheck[]
  readonly keysetVersion: number
  /** The usage evidence finalize weighed (every reporting process). */
  readonly evidence?: FinalizeEvidence
  /** True when `whenShareBelow` let it go before the time rule. */
  readonly byShare?: boolean
  /** Tokens of the retired keys verified in the last 5 minutes: what this finalize cut. */
  readonly cut?: number
}

/** What rollback and revoke did. */
export interface KeyChangeReport {
  readonly changed: boolean
  readonly changes: readonly { readonly kid: string, readonly purpose: string, readonly from: string, readonly to: string }[]
  readonly keysetVersion: number
}

/** The emergency report: what was cut, and where the revoked keys were used. */
export interface EmergencyReport {
  readonly reason: string
  readonly revoked: readonly { readonly kid: string, readonly purpose: string, readonly previousState: string }[]
  readonly created: readonly { readonly kid: string, readonly purpose: string }[]
  readonly sessionsEnded: number
  /** Tokens issued before this instant are refused everywhere (ISO, whole seconds). */
  readonly notBefore: string
  readonly keysetVersion: number
  /** Verifications naming a revoked kid over the last 24 h, per instance and result. */
  readonly usage: readonly { readonly kid: string, readonly instanceId: string, readonly result: string, readonly count: number }[]
  /** Live sessions whose refresh token a revoked key signed, just before they were ended. */
  readonly sessionsSigned: readonly { readonly kid: string, readonly liveSessions: number }[]
  /** Whether every live instance had loaded the new key set when the report was made. */
  readonly propagated: boolean
  readonly instances: readonly InstanceStatus[]
  /** Set when an asymmetric access key signed without its publication delay. */
  readonly publishNotice?: string | null
}

/** What `status` adds about usage: each process's last report, per-kid processes, and finalize's evidence per purpose. */
export interface UsageStatus {
  readonly reporters: readonly Reporter[]
  readonly keyProcesses: KeyProcesses
  readonly finalizeEvidence: Readonly<Record<string, FinalizeEvidence['recentUse']>>
}

/** The usage part of `status`, from the store's counters and the instances live within `liveWindowMs`. */
export async function usageStatus(store: Store, now: number, liveWindowMs: number): Promise<UsageStatus> {
  const [{ reporters, keyProcesses }, rows, keyset] = await Promise.all([
    usageByProcess(store, now, await store.listInstances(now - liveWindowMs)),
    evidenceRows(store, now),
    store.getKeyset(),
  ])
  // Next to each purpose's Finalize: who still verifies with its previous keys.
  const finalizeEvidence = Object.fromEntries(KEY_PURPOSES.filter((p) => keyset.keys.some((k) => k.purpose === p && k.state === 'previous'))
    .map((p) => [p, finalizeEvidenceOf(rows, keyset.keys, [p], now).recentUse]))
  return { reporters, keyProcesses, finalizeEvidence }
}

/** The changes of a step as a report lists them. */
export function describeChanges(changes: readonly KeyChange[], purposeOf: (kid: string) => string): KeyChangeReport['changes'] {
  return changes.map((c) => ({ kid: c.kid, purpose: purposeOf(c.kid), from: c.expectState, to: c.state }))
}

/** A finalize refusal with the usage evidence added to its message. */
export function withEvidence(err: unknown, evidence: FinalizeEvidence, threshold: number | undefined, addUse = true): unknown {
  if (!(err instanceof RekeyError) || err.code !== 'ERR_UNSAFE') return err
  const extra: string[] = []
  if (addUse && evidence.recentUse.total > 0) extra.push(recentUseMessage(evidence.recentUse))
  if (threshold !== undefined) extra.push(...evidence.share.map((s) => `--when-share-below: ${s.purpose}: ${s.evidence?.reason ?? 'no previous key'}`))
  if (extra.length === 0) return err
  return new RekeyError('ERR_UNSAFE', `${err.message}; ${extra.join('; ')}`, { problems: [...err.problems, ...extra] })
}
