/**
 * Key rotation, the managed lifecycle over the store: rotate (stage, wait for every live instance
 * to load the key, promote), finalize, rollback, revoke and emergency. The CLI and the admin
 * API call these same functions.
 *
 * Every step is one store transaction guarded by the key-set version (a concurrent change
 * makes it fail with ERR_CONFLICT, nothing written) and carries its audit row in that same
 * transaction (no audit row, no change). The rules of what may change live in
 * `core/rotation-rules.ts`; this file reads, generates key material, writes and waits. What
 * each step answers is shaped in `rotation-report.ts`; the token lifetimes every step waits
 * out are shared through the store by `token-lifetimes.ts`.
 */
import { cadenceDaysOf, DEFAULT_POLICY, type CadencePolicy } from '../../core/cadence.ts'
import { DATA_KEY_PURPOSE } from '../../core/data-keys.ts'
import { RekeyError } from '../../core/errors.ts'
import { maskSecrets } from '../../core/mask.ts'
import {
  planEmergency, planFinalize, planPromote, planRevoke, planRollback, planStage,
  type KeyChange, type RotationPolicy,
} from '../../core/rotation-rules.ts'
import { hasCode } from '../../store/errors.ts'
import type { Store, StoreOperations } from '../../store/store.ts'
import type { AuditWrite, ComputeAuditHash, InstanceHeartbeat, NewKey } from '../../store/types.ts'
import { auditWrite } from '../audit/audit-hash.ts'
import { systemClock, type Clock } from '../clock.ts'
import { ServiceError } from '../errors.ts'
import { failpoint } from '../failpoints.ts'
import { HEARTBEAT_INTERVAL_MS } from '../cluster/heartbeat.ts'
import { instanceStatus, keyView, statusReport, type InstanceStatus, type KeyView, type StatusReport } from './key-views.ts'
import {
  describeChanges, usageStatus, withEvidence,
  type EmergencyReport, type FinalizeReport, type KeyChangeReport, type RotateReport, type StagedKey, type UsageStatus,
} from './rotation-report.ts'
import { announcedJwksMaxAge, MAX_PUBLISH_DELAY_SECONDS, withAnnouncedLifetimes } from './token-lifetimes.ts'
import { KEY_PURPOSES, newManagedKey, rebindKeyUpdates, type ManagedAlg, type ServiceKeyPurpose } from './keys.ts'
import { NOT_BEFORE_SETTING } from '../auth/revocations.ts'
import { countedKids, EMERGENCY_SWEEP_SETTING, resumeSessionSweep, runSessionSweep, type SweepProgress } from '../sessions/session-maintenance.ts'
import { evidenceRows, finalizeEvidenceOf } from '../usage/usage-evidence.ts'
import { recentUseMessage } from '../../core/usage-evidence.ts'

/** Which of the service's keys an operation acts on. */
export type SecretTarget = ServiceKeyPurpose | 'all'

/** Every value `--secret` / `secret` accepts in managed mode. */
export const SECRET_TARGETS: readonly SecretTarget[] = Object.freeze(['access', 'refresh', 'all'])

/** Who acts, for the audit row. */
export interface Actor {
  readonly operator: string
  /** The HTTP request id for the admin API; `null` from the CLI. */
  readonly requestId: string | null
}

/** Default time rotate waits for every live instance to load the staged key, ms. */
export const DEFAULT_ROTATE_TIMEOUT_MS = 30_000
/** An instance is live when its last heartbeat is at most this old: three intervals. */
export const LIVE_WINDOW_MS = 3 * HEARTBEAT_INTERVAL_MS
const DAY_MS = 86_400_000
const EMERGENCY_ACK_WAIT_MS = 5000

/** What {@link KeyRotation} needs. Lifetimes in seconds. */
export interface KeyRotationOptions {
  readonly store: Store
  readonly masterKey: Buffer
  /** REKEY_MASTER_KEY_PREV during a master-key rollout: keys still sealed under it are re-sealed under it on a state change. */
  readonly previousMasterKey?: Buffer
  /** Algorithm of new access keys (REKEY_ACCESS_KEY_ALG); unset: the current access key's. Refresh keys are HS256. */
  readonly accessKeyAlg?: ManagedAlg
  readonly computeHash: ComputeAuditHash
  readonly accessTokenTtl: number
  readonly refreshTokenTtl: number
  /** Clock-skew buffer added to grace windows, seconds. Default 60. */
  readonly skewSeconds?: number
  readonly clock?: Clock
  /** Default {@link LIVE_WINDOW_MS}. */
  readonly liveWindowMs?: number
  /** How often rotate re-reads the heartbeats while waiting, ms. Default 25. */
  readonly pollMs?: number
  /** Rotation cadences (`rekey.config.json` "cadence"), for the inventory and `due` in status. Default: 90 days for JWT keys. */
  readonly cadencePolicy?: CadencePolicy
  /** Told of each rotation step after its transaction commits (webhook notices). Must not throw; errors are ignored. */
  readonly onEvent?: (event: RotationEvent) => void
  /**
   * The publication delay of staged asymmetric access keys, ms: REKEY_JWKS_MAX_AGE, so every
   * JWKS cache holds the new key before its first token. Default 0. HS256 keys are never delayed.
   */
  readonly publishDelayMs?: number
}

/** While rotate waits for a staged key's publication: when it may sign, and how long is left. */
export interface PublishProgress {
  readonly kids: readonly string[]
  readonly until: string
  readonly remainingMs: number
}

/** The store setting holding, per staged kid, when its publication delay ends (epoch ms, JSON). */
export const PUBLISH_UNTIL_SETTING = 'rotation.publish_until'

/**
 * The store setting listing the staged kids a `--hard` rotation staged or resumed (JSON array):
 * whoever promotes them (the scheduler, a second call, another operator) revokes the old keys,
 * so a hard rotation left staged (publication delay, `--no-wait`, the admin API's 202, an
 * instance that did not acknowledge in time) is never finished softly.
 */
export const HARD_STAGED_SETTING = 'rotation.hard_staged'

/** The kids of {@link HARD_STAGED_SETTING}; anything else (garbage) reads as none. */
async function recordedHard(store: Store): Promise<Set<string>> {
  try {
    const value: unknown = JSON.parse(await store.getSetting(HARD_STAGED_SETTING) ?? '[]')
    return new Set(Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : [])
  } catch {
    return new Set()
  }
}

/** The {@link PUBLISH_UNTIL_SETTING} object; anything else (garbage, `null`, a list) reads as empty. */
async function recordedPublication(store: Store): Promise<Record<string, unknown>> {
  try {
    const value: unknown = JSON.parse(await store.getSetting(PUBLISH_UNTIL_SETTING) ?? '{}')
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? value as Record<string, unknown> : {}
  } catch {
    return {}
  }
}

/**
 * A recorded publication end of a key created at `createdAt`, if rekey could have written it:
 * from staging to staging + the longest delay. Another value (a row edited outside rekey) is
 * not waited for, nor turned into a date.
 */
function recordedUntil(value: unknown, createdAt: number): number | undefined {
  return typeof value === 'number' && Number.isFinite(value) && value >= createdAt && value <= createdAt + MAX_PUBLISH_DELAY_SECONDS * 1000 ? value : undefined
}

/** A committed lifecycle step, for notices. Never carries key material. */
export interface RotationEvent {
  readonly type: 'rotate-started' | 'rotate-completed' | 'finalized' | 'rolled-back' | 'emergency'
  /** `jwt-access`, `jwt-refresh`. */
  readonly secrets: readonly string[]
  /** The kids staged, promoted, retired or restored. */
  readonly kids: readonly string[]
  readonly operator: string
  readonly at: number
  /** rotate-completed: when finalize becomes safe (ISO), if known. */
  readonly finalizeSafeAt?: string | null
  /** emergency: the reason given. */
  readonly reason?: string
}

/** The purposes a target names. TypeError for anything else (callers validate input first). */
export function purposesOf(secret: SecretTarget | undefined): ServiceKeyPurpose[] {
  if (secret === undefined || secret === 'all') return [...KEY_PURPOSES]
  if (!(KEY_PURPOSES as readonly string[]).includes(secret)) throw new TypeError(`unknown secret ${String(secret)}`)
  return [secret]
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))
const label = (purposes: readonly string[]): string => purposes.map((p) => `jwt-${p}`).join(',')

export class KeyRotation {
  readonly #options: KeyRotationOptions
  readonly #clock: Clock
  readonly policy: RotationPolicy

  constructor(options: KeyRotationOptions) {
    this.#options = options
    this.#clock = options.clock ?? systemClock
    this.policy = Object.freeze({
      lifetimes: Object.freeze({ access: options.accessTokenTtl, refresh: options.refreshTokenTtl }),
      skewSeconds: options.skewSeconds ?? 60,
    })
  }

  /**
   * The rotation policy with the longest token lifetimes any instance has announced
   * ({@link announceTokenLifetimes}): an operator whose CLI has a shorter JWT_EXPIRATION
   * than the service must not make finalize cut tokens the service issued.
   */
  async #effectivePolicy(): Promise<RotationPolicy> {
    return withAnnouncedLifetimes(this.#options.store, this.policy)
  }

  /** The algorithm of a new key: the configured one for access keys, else the current key's. */
  #algFor(purpose: string, keys: readonly { purpose: string, state: string, alg: string }[]): ManagedAlg {
    if (purpose !== 'access') return 'HS256'
    if (this.#options.accessKeyAlg !== undefined) return this.#options.accessKeyAlg
    const current = keys.find((k) => k.purpose === 'access' && k.state === 'current')?.alg
    return current === 'EdDSA' || current === 'ES256' || current === 'RS256' ? current : 'HS256'
  }

  /** The master keys a stored key may be sealed under: the current one, then the previous one. */
  get #masterKeys(): Buffer[] {
    return this.#options.previousMasterKey === undefined ? [this.#options.masterKey] : [this.#options.masterKey, this.#options.previousMasterKey]
  }

  get #liveWindowMs(): number {
    return this.#options.liveWindowMs ?? LIVE_WINDOW_MS
  }

  #emit(event: RotationEvent): void {
    try {
      this.#options.onEvent?.(event)
    } catch { /* a notice must never undo or fail a committed step */ }
  }

  #audit(actor: Actor, secret: string, method: string, notes: string, at: number): AuditWrite {
    return auditWrite(this.#options.computeHash, { at, secret, operator: actor.operator, method, notes, requestId: actor.requestId })
  }

  /** Every key, without material, and the key-set version. */
  async keys(): Promise<{ keysetVersion: number, keys: KeyView[] }> {
    const keyset = await this.#options.store.getKeyset()
    return { keysetVersion: keyset.version, keys: keyset.keys.map(keyView) }
  }

  /** Keys with their use, instances with the key set each has loaded, and secrets due within 7 days. */
  async status(): Promise<StatusReport & UsageStatus & { publishedUntil: Record<string, string> }> {
    const now = this.#clock.now()
    const report = await statusReport(this.#options.store, await this.#effectivePolicy(), now, this.#liveWindowMs, this.#options.cadencePolicy ?? DEFAULT_POLICY)
    // Staged asymmetric keys: until when each is published before it may sign.
    const publishedUntil: Record<string, string> = {}
    const recorded = await recordedPublication(this.#options.store)
    for (const s of report.secrets) {
      for (const k of s.keys) {
        const until = recordedUntil(recorded[k.kid], Date.parse(k.createdAt))
        if (k.state === 'next' && until !== undefined) publishedUntil[k.kid] = new Date(until).toISOString()
      }
    }
    return { ...report, ...await usageStatus(this.#options.store, now, this.#liveWindowMs), publishedUntil }
  }

  /** Records in the secret inventory, inside the caller's transaction, that the keys of `purposes` rotated at `at`. */
  async #markRotated(tx: StoreOperations, purposes: readonly string[], at: number, method: string): Promise<void> {
    for (const purpose of purposes) {
      const name = `jwt-${purpose}`
      const cadenceDays = cadenceDaysOf(this.#options.cadencePolicy ?? DEFAULT_POLICY, name, 'jwt')
      const existing = await tx.getSecret(name)
      if (existing === null || existing.cadenceDays !== cadenceDays) await tx.upsertSecret({ name, kind: existing?.kind ?? 'jwt', cadenceDays })
      await tx.markRotated({ name, at, method })
    }
  }

  /**
   * Waits until every live instance has loaded key-set `version` (or a later one), polling
   * the heartbeats; instances acknowledge with an immediate heartbeat after each reload.
   */
  async waitForInstances(version: number, timeoutMs: number): Promise<{ acknowledged: boolean, waitedMs: number, instances: InstanceHeartbeat[] }> {
    const started = Date.now()
    for (;;) {
      const instances = await this.#options.store.listInstances(this.#clock.now() - this.#liveWindowMs)
      const waitedMs = Date.now() - started
      if (instances.every((i) => i.keysetVersion >= version)) return { acknowledged: true, waitedMs, instances }
      if (waitedMs >= timeoutMs) return { acknowledged: false, waitedMs, instances }
      failpoint('lifecycle:wait-for-acks')
      await sleep(Math.min(this.#options.pollMs ?? 25, timeoutMs - waitedMs))
    }
  }

  /**
   * Graceful rotation. 1) A new key is staged as `next` (or an already staged one is reused:
   * rotate is idempotent). 2) Once every live instance has loaded a key set that contains it,
   * 3) it is promoted: it signs, the old current key verifies as `previous` until finalize
   * (with `hard`, the old keys are revoked instead). With no live instance, 2) is immediate.
   * After `timeoutMs` without every acknowledgement it returns `promoted: false`, the key
   * still staged; calling rotate again finishes the job.
   */
  async rotate(input: {
    secret?: SecretTarget, hard?: boolean, timeoutMs?: number, actor: Actor,
    /** This rotation's publication delay, ms (`--publish-delay`); default the lifecycle's. */
    publishDelayMs?: number
    /** Return at staging while the publication delay runs (the scheduler promotes); promote at once if it has passed. */
    noWait?: boolean
    /** Called about once a second while waiting through the publication delay. Must not throw. */
    onProgress?: (progress: PublishProgress) => void
  }): Promise<RotateReport> {
    const { store, masterKey } = this.#options
    const purposes = purposesOf(input.secret)
    const hard = input.hard === true
    const keyset = await store.getKeyset()
    const now = this.#clock.now()
    const staged: StagedKey[] = []
    const insert: NewKey[] = []
    for (const purpose of purposes) {
      const plan = planStage(keyset.keys, purpose)
      if (plan.stage) {
        const key: NewKey = newManagedKey(masterKey, purpose, now, this.#algFor(purpose, keyset.keys), 'next')
        insert.push(key)
        staged.push({ purpose, kid: key.kid, resumed: false })
      } else {
        staged.push({ purpose, kid: plan.next, resumed: true })
      }
    }
    // A hard rotation is hard whoever finishes it: its staged kids are recorded (with the
    // staging, in its transaction) before this call can return with the key staged.
    const hardKids = await recordedHard(store)
    const recordHard = hard && staged.some((k) => !hardKids.has(k.kid))
    if (recordHard) {
      const stillNext = new Set(keyset.keys.filter((k) => k.state === 'next').map((k) => k.kid))
      for (const kid of hardKids) if (!stillNext.has(kid)) hardKids.delete(kid)
      for (const k of staged) hardKids.add(k.kid)
    }
    const hardSetting = JSON.stringify([...hardKids])
    let version = keyset.version
    if (insert.length > 0) {
      version = await store.transaction(async (tx) => {
        const v = await tx.transitionKeys({
          expectedVersion: keyset.version,
          insert,
          audit: this.#audit(input.actor, label(purposes), 'rotate-stage',
            `staged ${insert.map((k) => `${k.purpose} key ${k.kid}`).join(' and ')} as next${hard ? ' (hard rotation)' : ''}; it signs once every live instance has loaded it`, now),
        })
        if (recordHard) await tx.setSetting(HARD_STAGED_SETTING, hardSetting)
        return v
      })
    } else if (recordHard) {
      await store.setSetting(HARD_STAGED_SETTING, hardSetting)
    }

    const hardFor = (kid: string): boolean => hard || hardKids.has(kid)
    const anyHard = staged.some((k) => hardFor(k.kid))
    if (insert.length > 0) this.#emit({ type: 'rotate-started', secrets: purposes.map((p) => `jwt-${p}`), kids: insert.map((k) => k.kid), operator: input.actor.operator, at: now })
    failpoint('rotate:after-stage')
    const publication = await this.#publication(staged, [...keyset.keys, ...insert.map((k) => ({ kid: k.kid, alg: k.alg, createdAt: k.createdAt }))], input.publishDelayMs)
    const acked = (i: InstanceHeartbeat): InstanceStatus & { acknowledged: boolean } => ({ ...instanceStatus(i, version), acknowledged: i.keysetVersion >= version })
    const publishedUntil = publication === null ? null : new Date(publication.until).toISOString()
    if (publication !== null && input.noWait === true && this.#clock.now() < publication.until) {
      const seen = await this.waitForInstances(version, 0)
      return {
        secrets: purposes, staged, hard: anyHard, waitedMs: 0, instances: seen.instances.map(acked), promoted: false, signingEverywhere: false,
        keysetVersion: version, changes: [], finalizeSafeAt: null, publishedUntil, waitingFor: 'publication',
      }
    }
    const wait = await this.waitForInstances(version, input.timeoutMs ?? DEFAULT_ROTATE_TIMEOUT_MS)
    const base = { secrets: purposes, staged, hard: anyHard, waitedMs: wait.waitedMs, instances: wait.instances.map(acked), publishedUntil }
    if (!wait.acknowledged) return { ...base, promoted: false, signingEverywhere: false, keysetVersion: version, changes: [], finalizeSafeAt: null, waitingFor: 'instances' }
    // Publish before use: outside verifiers (JWKS caches, jose's cooldown) have the key before its first token.
    if (publication !== null) await this.#waitForPublication(publication, input.onProgress)

    const fresh = await store.getKeyset()
    const promotedAt = this.#clock.now()
    const changes: KeyChange[] = []
    // The scheduler (or another operator) may have promoted the staged key while this call
    // waited: that rotation is done, not a conflict.
    const done = staged.filter((s) => fresh.keys.some((k) => k.kid === s.kid && k.state === 'current'))
    // With --hard, a key promoted by the scheduler (which promotes softly) leaves the old keys
    // verifying as previous: this rotation still revokes them, as it would have at promotion.
    const hardLeft: KeyChange[] = fresh.keys.filter((k) => k.state === 'previous' && done.some((s) => s.purpose === k.purpose && hardFor(s.kid)))
      .map((k) => ({ kid: k.kid, expectState: 'previous', state: 'revoked', revokedAt: promotedAt, revokeReason: 'rotate --hard' }))
    if (done.length === staged.length && hardLeft.length === 0) {
      const signing = await this.waitForInstances(fresh.version, Math.max(0, (input.timeoutMs ?? DEFAULT_ROTATE_TIMEOUT_MS) - wait.waitedMs))
      return {
        ...base,
        waitedMs: wait.waitedMs + signing.waitedMs,
        instances: signing.instances.map((i) => ({ ...instanceStatus(i, fresh.version), acknowledged: i.keysetVersion >= fresh.version })),
        promoted: true, signingEverywhere: signing.acknowledged, keysetVersion: fresh.version, changes: [], finalizeSafeAt: null, waitingFor: null,
      }
    }
    for (const s of staged) {
      if (done.includes(s)) continue
      const plan = planPromote(fresh.keys, s.purpose, promotedAt, await this.#effectivePolicy(), { hard: hardFor(s.kid) })
      if (plan === null || !plan.some((c) => c.kid === s.kid && c.state === 'current')) {
        throw new RekeyError('ERR_CONFLICT', `the staged ${s.purpose} key ${s.kid} is no longer next: another operation promoted or revoked it first`)
      }
      changes.push(...plan)
    }
    changes.push(...hardLeft)
    const purposeOf = (kid: string): string => fresh.keys.find((k) => k.kid === kid)?.purpose ?? '?'
    const notes = changes.map((c) => `${purposeOf(c.kid)} key ${c.kid} ${c.expectState}→${c.state}`).join('; ')
    const promotedVersion = await store.transaction(async (tx) => {
      const v = await tx.transitionKeys({
        expectedVersion: fresh.version,
        update: rebindKeyUpdates(this.#masterKeys, fresh.keys, changes),
        audit: this.#audit(input.actor, label(purposes), anyHard ? 'rotate-hard' : 'rotate', `${notes}${anyHard ? '' : '; the old key verifies until finalize'}`, promotedAt),
      })
      failpoint('rotate:promote-in-transaction')
      await this.#markRotated(tx, purposes, promotedAt, anyHard ? 'rotate-hard' : 'rotate')
      return v
    })
    failpoint('rotate:after-promote')
    const retireAfter = changes.map((c) => c.retireAfter).filter((t): t is number => typeof t === 'number')
    this.#emit({
      type: 'rotate-completed', secrets: purposes.map((p) => `jwt-${p}`), kids: staged.map((k) => k.kid), operator: input.actor.operator, at: promotedAt,
      finalizeSafeAt: retireAfter.length === 0 ? null : new Date(Math.max(...retireAfter)).toISOString(),
    })
    // The new key signs on an instance once it has loaded the promoted key set: wait for that too.
    const remaining = Math.max(0, (input.timeoutMs ?? DEFAULT_ROTATE_TIMEOUT_MS) - wait.waitedMs)
    const signing = await this.waitForInstances(promotedVersion, remaining)
    return {
      ...base,
      waitedMs: wait.waitedMs + signing.waitedMs,
      instances: signing.instances.map((i) => ({ ...instanceStatus(i, promotedVersion), acknowledged: i.keysetVersion >= promotedVersion })),
      promoted: true,
      signingEverywhere: signing.acknowledged,
      keysetVersion: promotedVersion,
      changes: describeChanges(changes, purposeOf),
      finalizeSafeAt: retireAfter.length === 0 ? null : new Date(Math.max(...retireAfter)).toISOString(),
      waitingFor: null,
    }
  }

  /**
   * When the staged asymmetric access keys may sign: staging + the publication delay, kept in
   * the store so a resumed rotation, another operator or the scheduler waits out the same time.
   * `null` when no staged key is delayed (HS256, or a delay of 0).
   */
  async #publication(staged: readonly StagedKey[], keys: readonly { kid: string, alg: string, createdAt: number }[], delayMs: number | undefined): Promise<{ kids: string[], until: number } | null> {
    const delayed = staged.flatMap((s) => {
      const key = keys.find((k) => k.kid === s.kid)
      return s.purpose === 'access' && key !== undefined && !/^HS/.test(key.alg) ? [key] : []
    })
    if (delayed.length === 0) return null
    // Unreadable, or an end rekey could not have recorded: recomputed below.
    const recorded = await recordedPublication(this.#options.store)
    // The longest max-age any running service announced: a CLI with a shorter REKEY_JWKS_MAX_AGE
    // must not promote a key that JWKS caches fed by those services do not hold yet.
    const announcedMs = delayMs === undefined ? await announcedJwksMaxAge(this.#options.store) * 1000 : 0
    const next: Record<string, number> = {}
    for (const key of delayed) {
      const known = recordedUntil(recorded[key.kid], key.createdAt)
      // An explicit delay (`--publish-delay`) wins, also when resuming; else the one recorded at staging.
      next[key.kid] = delayMs === undefined && known !== undefined
        ? known
        : key.createdAt + Math.min(MAX_PUBLISH_DELAY_SECONDS * 1000, Math.max(0, delayMs ?? Math.max(this.#options.publishDelayMs ?? 0, announcedMs)))
    }
    if (delayed.some((k) => recorded[k.kid] !== next[k.kid])) await this.#options.store.setSetting(PUBLISH_UNTIL_SETTING, JSON.stringify(next))
    if (delayed.every((k) => (next[k.kid] as number) <= k.createdAt)) return null
    return { kids: delayed.map((k) => k.kid), until: Math.max(...Object.values(next)) }
  }

  async #waitForPublication(publication: { kids: string[], until: number }, onProgress: ((p: PublishProgress) => void) | undefined): Promise<void> {
    for (;;) {
      const remainingMs = publication.until - this.#clock.now()
      if (remainingMs <= 0) return
      try {
        onProgress?.({ kids: publication.kids, until: new Date(publication.until).toISOString(), remainingMs })
      } catch { /* progress output must not stop a rotation */ }
      await sleep(Math.min(1000, remainingMs))
    }
  }

  /** Retires previous keys once safe (see `planFinalize`); ERR_UNSAFE before that unless `force`. */
  async finalize(input: { secret?: SecretTarget, force?: boolean, actor: Actor, /** `--when-share-below`, a fraction (0.05). */ whenShareBelow?: number }): Promise<FinalizeReport> {
    const { store } = this.#options
    const purposes = purposesOf(input.secret)
    const keyset = await store.getKeyset()
    const now = this.#clock.now()
    // Exact, and only the previous refresh keys' sessions (a partial index), never the whole table.
    const live = await store.countLiveSessionsForKids(countedKids(keyset.keys.filter((k) => purposes.includes(k.purpose as ServiceKeyPurpose))), now)
    // Finalize on evidence: the old key's recent use across every reporting process (see core/usage-evidence.ts).
    const evidence = finalizeEvidenceOf(await evidenceRows(store, now), keyset.keys, purposes, now, input.whenShareBelow)
    const byShare = evidence.shareSatisfied && input.force !== true
    let plan: ReturnType<typeof planFinalize>
    try {
      plan = planFinalize(keyset.keys, purposes, now, await this.#effectivePolicy(), live, { force: input.force === true || byShare })
    } catch (err) {
      throw withEvidence(err, evidence, input.whenShareBelow)
    }
    if (plan.changes.length > 0 && input.force !== true && !byShare && evidence.recentUse.total > 0) {
      throw withEvidence(new RekeyError('ERR_UNSAFE', `finalize refused: ${recentUseMessage(evidence.recentUse)} (wait until no process uses it, or use --when-share-below P% or --force)`), evidence, input.whenShareBelow, false)
    }
    const purposeOf = (kid: string): string => keyset.keys.find((k) => k.kid === kid)?.purpose ?? '?'
    if (plan.changes.length === 0) return { changed: false, forced: false, retired: [], checks: [], keysetVersion: keyset.version }
    const unsafe = plan.checks.filter((c) => !c.safe)
    const cut = evidence.recentUse.total
    const notes = `retired ${plan.changes.map((c) => `${purposeOf(c.kid)} key ${c.kid}`).join(', ')}`
      + (byShare ? `; on usage evidence: ${evidence.share.map((s) => s.evidence?.reason).join('; ')}; cut ${cut} token(s) verified in the last 5 min` : '')
      + (plan.forced && !byShare ? `; forced while unsafe: ${unsafe.map((c) => `${c.kid} (${c.reason})`).join('; ')}` : '')
      + (input.force === true && cut > 0 ? `; forced while in use: ${recentUseMessage(evidence.recentUse)}` : '')
    const version = await store.transaction(async (tx) => {
      const v = await tx.transitionKeys({
        expectedVersion: keyset.version,
        update: rebindKeyUpdates(this.#masterKeys, keyset.keys, plan.changes),
        audit: this.#audit(input.actor, label(purposes), byShare ? 'finalize-share' : plan.forced || (input.force === true && cut > 0) ? 'finalize-force' : 'finalize', notes, now),
      })
      failpoint('finalize:in-transaction')
      return v
    })
    this.#emit({ type: 'finalized', secrets: purposes.map((p) => `jwt-${p}`), kids: plan.changes.map((c) => c.kid), operator: input.actor.operator, at: now })
    return {
      changed: true, forced: (plan.forced && !byShare) || (input.force === true && cut > 0), checks: plan.checks, keysetVersion: version,
      retired: plan.changes.map((c) => ({ kid: c.kid, purpose: purposeOf(c.kid) })),
      evidence, byShare, cut,
    }
  }

  /**
   * The most recently demoted previous key signs again; the current one verifies as previous
   * with a full grace window. Both keys already verify on every instance, so no wait is needed.
   * With `all`, each purpose that has a previous key rolls back; ERR_UNSAFE when none has.
   */
  async rollback(input: { secret?: SecretTarget, actor: Actor }): Promise<KeyChangeReport> {
    const { store } = this.#options
    const purposes = purposesOf(input.secret)
    const keyset = await store.getKeyset()
    const now = this.#clock.now()
    const candidates = input.secret === undefined || input.secret === 'all'
      ? purposes.filter((p) => keyset.keys.some((k) => k.purpose === p && k.state === 'previous'))
      : purposes
    if (candidates.length === 0) {
      throw new RekeyError('ERR_UNSAFE', 'rollback refused: no key has a previous key to go back to (finalized or revoked); rotate instead')
    }
    const policy = await this.#effectivePolicy()
    const changes = candidates.flatMap((p) => planRollback(keyset.keys, p, now, policy))
    const purposeOf = (kid: string): string => keyset.keys.find((k) => k.kid === kid)?.purpose ?? '?'
    const version = await store.transaction(async (tx) => {
      const v = await tx.transitionKeys({
        expectedVersion: keyset.version,
        update: rebindKeyUpdates(this.#masterKeys, keyset.keys, changes),
        audit: this.#audit(input.actor, label(candidates), 'rollback',
          changes.map((c) => `${purposeOf(c.kid)} key ${c.kid} ${c.expectState}→${c.state}`).join('; '), now),
      })
      failpoint('rollback:in-transaction')
      return v
    })
    this.#emit({ type: 'rolled-back', secrets: candidates.map((p) => `jwt-${p}`), kids: changes.filter((c) => c.state === 'current').map((c) => c.kid), operator: input.actor.operator, at: now })
    return { changed: true, changes: describeChanges(changes, purposeOf), keysetVersion: version }
  }

  /**
   * Revokes one key: it stops verifying on every instance at the next reload (a `keys`
   * notification). The current key is refused (see `planRevoke`); an unknown kid is
   * `not_found`; a revoked key is left as it is.
   */
  async revoke(input: { kid: string, reason?: string, actor: Actor }): Promise<KeyChangeReport> {
    const { store } = this.#options
    const keyset = await store.getKeyset()
    const now = this.#clock.now()
    const reason = maskSecrets(input.reason ?? 'revoked by operator')
    const data = keyset.keys.find((k) => k.kid === input.kid && k.purpose === DATA_KEY_PURPOSE && k.state !== 'revoked')
    if (data !== undefined) {
      // Revoking a data key makes every value still under it unreadable: its end is finalize, judged on the column counts.
      // Checked before the rules, whose answer for a current key (emergency) does not apply to data keys.
      throw new RekeyError('ERR_UNSAFE', `${data.kid} is a data key: it is not revoked (its values would become unreadable); rotate --secret ENCRYPTION_KEY, rekey rewrap, then finalize --secret ENCRYPTION_KEY retires it once no value uses it`)
    }
    const plan = planRevoke(keyset.keys, input.kid, now, reason)
    if (plan.kind === 'unknown') throw new ServiceError('not_found', 'No key has that kid')
    if (plan.kind === 'unchanged') return { changed: false, changes: [], keysetVersion: keyset.version }
    const version = await store.transitionKeys({
      expectedVersion: keyset.version,
      update: rebindKeyUpdates(this.#masterKeys, keyset.keys, [plan.change]),
      audit: this.#audit(input.actor, `jwt-${plan.key.purpose}`, 'revoke', `${plan.key.purpose} key ${plan.key.kid} ${plan.key.state}→revoked: ${reason}`, now),
    })
    return { changed: true, changes: describeChanges([plan.change], () => plan.key.purpose), keysetVersion: version }
  }

  /**
   * Compromise response. One small transaction first: every verifying key of the purposes is
   * revoked, a new current key inserted, and the global not-before refuses every token issued
   * before now (retried on a conflict: an emergency must not lose to a concurrent rotation).
   * Then every session live at that instant ends, in bounded batches (`onProgress` after each),
   * resumable after a crash (see `resumeSessionSweep`). The report adds where the revoked keys
   * were used over the last 24 h.
   */
  async emergency(input: { secret?: SecretTarget, reason: string, actor: Actor, onProgress?: (p: SweepProgress) => void }): Promise<EmergencyReport> {
    const { store, masterKey } = this.#options
    const purposes = purposesOf(input.secret)
    // Notes and reasons are kept in the audit log and key rows: a pasted secret is masked.
    const reason = input.reason.trim() === '' ? 'not given' : maskSecrets(input.reason.trim())
    for (let attempt = 1; ; attempt++) {
      const keyset = await store.getKeyset()
      const now = this.#clock.now()
      const changes = planEmergency(keyset.keys, purposes, now, `emergency: ${reason}`)
      const insert = purposes.map((p) => newManagedKey(masterKey, p, now, this.#algFor(p, keyset.keys)))
      const revokedKids = new Set(changes.map((c) => c.kid))
      // The second after the emergency: `iat` counts whole seconds, so a token issued earlier in
      // the emergency's own second has the same `iat` as the emergency and must be refused too
      // (the service stamps tokens issued later in that second with this not-before).
      const notBefore = Math.floor(now / 1000) + 1
      let version: number
      try {
        // First and small, whatever the number of sessions: the new keys and the not-before,
        // which alone refuse every older token on every instance at its next notification.
        version = await store.transaction(async (tx) => {
          const v = await tx.transitionKeys({
            expectedVersion: keyset.version,
            update: rebindKeyUpdates(this.#masterKeys, keyset.keys, changes),
            insert,
            audit: this.#audit(input.actor, label(purposes), 'emergency',
              `revoked ${changes.map((c) => c.kid).join(', ') || 'no key'}; new ${insert.map((k) => `${k.purpose} key ${k.kid}`).join(' and ')}; every session ended; not-before ${new Date(notBefore * 1000).toISOString()}; reason: ${reason}`, now),
          })
          failpoint('emergency:in-transaction')
          await tx.setSetting(NOT_BEFORE_SETTING, String(notBefore))
          await tx.setSetting(EMERGENCY_SWEEP_SETTING, JSON.stringify({ at: now, reason: 'emergency' }))
          await this.#markRotated(tx, purposes, now, 'emergency')
          return v
        })
      } catch (err) {
        if (hasCode(err, 'ERR_CONFLICT') && attempt < 3) continue
        throw err
      }
      // The keys and the not-before are committed: the notice goes out before the sweep.
      this.#emit({ type: 'emergency', secrets: purposes.map((p) => `jwt-${p}`), kids: insert.map((k) => k.kid), operator: input.actor.operator, at: now, reason })
      const purposeOf = (kid: string): string => keyset.keys.find((k) => k.kid === kid)?.purpose ?? '?'
      const signedKids = [...revokedKids].filter((kid) => purposeOf(kid) === 'refresh')
      // Sessions first, with the database to itself; then what the report says. Live just
      // before `now` still counts the families the sweep ended (revoked at `now`).
      const ended = await runSessionSweep(store, { at: now, reason: 'emergency' }, { now: () => this.#clock.now(), ...(input.onProgress === undefined ? {} : { onProgress: input.onProgress }) })
      const [usage, live] = await Promise.all([store.usageSince(now - DAY_MS), store.countLiveSessionsForKids(signedKids, now - 1)])
      failpoint('emergency:after-commit')
      const wait = await this.waitForInstances(version, EMERGENCY_ACK_WAIT_MS)
      return {
        reason,
        revoked: changes.map((c) => ({ kid: c.kid, purpose: purposeOf(c.kid), previousState: c.expectState })),
        created: insert.map((k) => ({ kid: k.kid, purpose: k.purpose })),
        sessionsEnded: ended,
        notBefore: new Date(notBefore * 1000).toISOString(),
        keysetVersion: version,
        usage: usage.filter((u) => revokedKids.has(u.kid)),
        sessionsSigned: signedKids.map((kid) => ({ kid, liveSessions: live.get(kid) ?? 0 })),
        propagated: wait.acknowledged,
        instances: wait.instances.map((i) => instanceStatus(i, version)),
        // An emergency cannot wait for publication: say what that means for outside verifiers.
        publishNotice: insert.some((k) => k.purpose === 'access' && !/^HS/.test(k.alg))
          ? 'the new access key signed at once, without the publication delay: verifiers outside rekey that cache the JWKS may reject new tokens until they refetch it'
          : null,
      }
    }
  }

  /**
   * Finishes an emergency's session sweep left unfinished (its process was killed), if any:
   * the scheduler's lease holder calls this each tick. How many sessions it ended, or `null`
   * when none was pending or the pending one is younger than `minAgeMs` (still running elsewhere).
   */
  resumeSessionSweep(minAgeMs = 30_000): Promise<number | null> {
    return resumeSessionSweep(this.#options.store, () => this.#clock.now(), minAgeMs)
  }
}
