/**
 * The managed rotation lifecycle over the store: rotate (stage, wait for every live instance
 * to load the key, promote), finalize, rollback, revoke and emergency. The CLI and the admin
 * API call these same functions.
 *
 * Every step is one store transaction guarded by the key-set version (a concurrent change
 * makes it fail with ERR_CONFLICT, nothing written) and carries its audit row in that same
 * transaction (no audit row, no change). The rules of what may change live in
 * `core/rotation-rules.ts`; this file reads, generates key material, writes and waits.
 */
import { cadenceDaysOf, DEFAULT_POLICY, type CadencePolicy } from '../core/cadence.ts'
import { RekeyError } from '../core/errors.ts'
import { maskSecrets } from '../core/mask.ts'
import {
  planEmergency, planFinalize, planPromote, planRevoke, planRollback, planStage,
  type FinalizeCheck, type KeyChange, type RotationPolicy,
} from '../core/rotation-rules.ts'
import { hasCode } from '../store/errors.ts'
import type { Store, StoreOperations } from '../store/store.ts'
import type { AuditWrite, ComputeAuditHash, InstanceHeartbeat, NewKey } from '../store/types.ts'
import { auditWrite } from './audit.ts'
import { systemClock, type Clock } from './clock.ts'
import { ServiceError } from './errors.ts'
import { failpoint } from './failpoints.ts'
import { HEARTBEAT_INTERVAL_MS } from './heartbeat.ts'
import { instanceStatus, keyView, statusReport, type InstanceStatus, type KeyView, type StatusReport } from './key-views.ts'
import { KEY_PURPOSES, newManagedKey, rebindKeyUpdates, type ManagedAlg, type ServiceKeyPurpose } from './keys.ts'
import { NOT_BEFORE_SETTING } from './revocations.ts'

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

/** What {@link Lifecycle} needs. Lifetimes in seconds. */
export interface LifecycleOptions {
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
  readonly onEvent?: (event: LifecycleEvent) => void
}

/** A committed lifecycle step, for notices. Never carries key material. */
export interface LifecycleEvent {
  readonly type: 'rotate-started' | 'rotate-completed' | 'finalized' | 'rolled-back'
  /** `jwt-access`, `jwt-refresh`. */
  readonly secrets: readonly string[]
  /** The kids staged, promoted, retired or restored. */
  readonly kids: readonly string[]
  readonly operator: string
  readonly at: number
  /** rotate-completed: when finalize becomes safe (ISO), if known. */
  readonly finalizeSafeAt?: string | null
}

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
}

/** What finalize did. */
export interface FinalizeReport {
  readonly changed: boolean
  readonly forced: boolean
  readonly retired: readonly { readonly kid: string, readonly purpose: string }[]
  readonly checks: readonly FinalizeCheck[]
  readonly keysetVersion: number
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
}

/** The purposes a target names. TypeError for anything else (callers validate input first). */
export function purposesOf(secret: SecretTarget | undefined): ServiceKeyPurpose[] {
  if (secret === undefined || secret === 'all') return [...KEY_PURPOSES]
  if (!(KEY_PURPOSES as readonly string[]).includes(secret)) throw new TypeError(`unknown secret ${String(secret)}`)
  return [secret]
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))
const label = (purposes: readonly string[]): string => purposes.map((p) => `jwt-${p}`).join(',')

function describe(changes: readonly KeyChange[], purposeOf: (kid: string) => string): KeyChangeReport['changes'] {
  return changes.map((c) => ({ kid: c.kid, purpose: purposeOf(c.kid), from: c.expectState, to: c.state }))
}

/** The store setting where instances announce their token lifetimes (seconds, JSON). */
export const TOKEN_LIFETIMES_SETTING = 'auth.token_lifetimes'

function parseLifetimes(text: string | null): { access?: number, refresh?: number } {
  if (text === null) return {}
  try {
    const value = JSON.parse(text) as { access?: unknown, refresh?: unknown }
    const ok = (n: unknown): number | undefined => (typeof n === 'number' && Number.isFinite(n) && n > 0 ? n : undefined)
    const access = ok(value.access)
    const refresh = ok(value.refresh)
    return { ...(access === undefined ? {} : { access }), ...(refresh === undefined ? {} : { refresh }) }
  } catch {
    return {}
  }
}

/**
 * Announces a service's token lifetimes in the store, keeping the longest ever announced,
 * so every rotation step (from any instance or CLI) waits at least that long.
 */
export async function announceTokenLifetimes(store: Store, lifetimes: { access: number, refresh: number }): Promise<void> {
  const known = parseLifetimes(await store.getSetting(TOKEN_LIFETIMES_SETTING))
  const access = Math.max(known.access ?? 0, lifetimes.access)
  const refresh = Math.max(known.refresh ?? 0, lifetimes.refresh)
  if (access !== known.access || refresh !== known.refresh) {
    await store.setSetting(TOKEN_LIFETIMES_SETTING, JSON.stringify({ access, refresh }))
  }
}

export class Lifecycle {
  readonly #o: LifecycleOptions
  readonly #clock: Clock
  readonly policy: RotationPolicy

  constructor(options: LifecycleOptions) {
    this.#o = options
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
    const announced = parseLifetimes(await this.#o.store.getSetting(TOKEN_LIFETIMES_SETTING))
    const own = this.policy.lifetimes
    const access = Math.max(own.access ?? 0, announced.access ?? 0)
    const refresh = Math.max(own.refresh ?? 0, announced.refresh ?? 0)
    if (access === own.access && refresh === own.refresh) return this.policy
    return Object.freeze({ ...this.policy, lifetimes: Object.freeze({ access, refresh }) })
  }

  /** The algorithm of a new key: the configured one for access keys, else the current key's. */
  #algFor(purpose: string, keys: readonly { purpose: string, state: string, alg: string }[]): ManagedAlg {
    if (purpose !== 'access') return 'HS256'
    if (this.#o.accessKeyAlg !== undefined) return this.#o.accessKeyAlg
    const current = keys.find((k) => k.purpose === 'access' && k.state === 'current')?.alg
    return current === 'EdDSA' || current === 'ES256' || current === 'RS256' ? current : 'HS256'
  }

  /** The master keys a stored key may be sealed under: the current one, then the previous one. */
  get #masterKeys(): Buffer[] {
    return this.#o.previousMasterKey === undefined ? [this.#o.masterKey] : [this.#o.masterKey, this.#o.previousMasterKey]
  }

  get #liveWindowMs(): number {
    return this.#o.liveWindowMs ?? LIVE_WINDOW_MS
  }

  #emit(event: LifecycleEvent): void {
    try {
      this.#o.onEvent?.(event)
    } catch { /* a notice must never undo or fail a committed step */ }
  }

  #audit(actor: Actor, secret: string, method: string, notes: string, at: number): AuditWrite {
    return auditWrite(this.#o.computeHash, { at, secret, operator: actor.operator, method, notes, requestId: actor.requestId })
  }

  /** Every key, without material, and the key-set version. */
  async keys(): Promise<{ keysetVersion: number, keys: KeyView[] }> {
    const keyset = await this.#o.store.getKeyset()
    return { keysetVersion: keyset.version, keys: keyset.keys.map(keyView) }
  }

  /** Keys with their use, instances with the key set each has loaded, and secrets due within 7 days. */
  async status(): Promise<StatusReport> {
    return statusReport(this.#o.store, await this.#effectivePolicy(), this.#clock.now(), this.#liveWindowMs, this.#o.cadencePolicy ?? DEFAULT_POLICY)
  }

  /** Records in the secret inventory, inside the caller's transaction, that the keys of `purposes` rotated at `at`. */
  async #markRotated(tx: StoreOperations, purposes: readonly string[], at: number, method: string): Promise<void> {
    for (const purpose of purposes) {
      const name = `jwt-${purpose}`
      const cadenceDays = cadenceDaysOf(this.#o.cadencePolicy ?? DEFAULT_POLICY, name, 'jwt')
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
      const instances = await this.#o.store.listInstances(this.#clock.now() - this.#liveWindowMs)
      const waitedMs = Date.now() - started
      if (instances.every((i) => i.keysetVersion >= version)) return { acknowledged: true, waitedMs, instances }
      if (waitedMs >= timeoutMs) return { acknowledged: false, waitedMs, instances }
      failpoint('lifecycle:wait-for-acks')
      await sleep(Math.min(this.#o.pollMs ?? 25, timeoutMs - waitedMs))
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
  async rotate(input: { secret?: SecretTarget, hard?: boolean, timeoutMs?: number, actor: Actor }): Promise<RotateReport> {
    const { store, masterKey } = this.#o
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
    let version = keyset.version
    if (insert.length > 0) {
      version = await store.transitionKeys({
        expectedVersion: keyset.version,
        insert,
        audit: this.#audit(input.actor, label(purposes), 'rotate-stage',
          `staged ${insert.map((k) => `${k.purpose} key ${k.kid}`).join(' and ')} as next${hard ? ' (hard rotation)' : ''}; it signs once every live instance has loaded it`, now),
      })
    }

    if (insert.length > 0) this.#emit({ type: 'rotate-started', secrets: purposes.map((p) => `jwt-${p}`), kids: insert.map((k) => k.kid), operator: input.actor.operator, at: now })
    failpoint('rotate:after-stage')
    const wait = await this.waitForInstances(version, input.timeoutMs ?? DEFAULT_ROTATE_TIMEOUT_MS)
    const acked = (i: InstanceHeartbeat): InstanceStatus & { acknowledged: boolean } => ({ ...instanceStatus(i, version), acknowledged: i.keysetVersion >= version })
    const base = { secrets: purposes, staged, hard, waitedMs: wait.waitedMs, instances: wait.instances.map(acked) }
    if (!wait.acknowledged) return { ...base, promoted: false, signingEverywhere: false, keysetVersion: version, changes: [], finalizeSafeAt: null }

    const fresh = await store.getKeyset()
    const promotedAt = this.#clock.now()
    const changes: KeyChange[] = []
    for (const s of staged) {
      const plan = planPromote(fresh.keys, s.purpose, promotedAt, await this.#effectivePolicy(), { hard })
      if (plan === null || !plan.some((c) => c.kid === s.kid && c.state === 'current')) {
        throw new RekeyError('ERR_CONFLICT', `the staged ${s.purpose} key ${s.kid} is no longer next: another operation promoted or revoked it first`)
      }
      changes.push(...plan)
    }
    const purposeOf = (kid: string): string => fresh.keys.find((k) => k.kid === kid)?.purpose ?? '?'
    const notes = changes.map((c) => `${purposeOf(c.kid)} key ${c.kid} ${c.expectState}→${c.state}`).join('; ')
    const promotedVersion = await store.transaction(async (tx) => {
      const v = await tx.transitionKeys({
        expectedVersion: fresh.version,
        update: rebindKeyUpdates(this.#masterKeys, fresh.keys, changes),
        audit: this.#audit(input.actor, label(purposes), hard ? 'rotate-hard' : 'rotate', `${notes}${hard ? '' : '; the old key verifies until finalize'}`, promotedAt),
      })
      failpoint('rotate:promote-in-transaction')
      await this.#markRotated(tx, purposes, promotedAt, hard ? 'rotate-hard' : 'rotate')
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
      changes: describe(changes, purposeOf),
      finalizeSafeAt: retireAfter.length === 0 ? null : new Date(Math.max(...retireAfter)).toISOString(),
    }
  }

  /** Retires previous keys once safe (see `planFinalize`); ERR_UNSAFE before that unless `force`. */
  async finalize(input: { secret?: SecretTarget, force?: boolean, actor: Actor }): Promise<FinalizeReport> {
    const { store } = this.#o
    const purposes = purposesOf(input.secret)
    const keyset = await store.getKeyset()
    const now = this.#clock.now()
    const live = await store.countLiveSessionsByKid(now)
    const plan = planFinalize(keyset.keys, purposes, now, await this.#effectivePolicy(), live, { force: input.force === true })
    const purposeOf = (kid: string): string => keyset.keys.find((k) => k.kid === kid)?.purpose ?? '?'
    if (plan.changes.length === 0) return { changed: false, forced: false, retired: [], checks: [], keysetVersion: keyset.version }
    const unsafe = plan.checks.filter((c) => !c.safe)
    const notes = `retired ${plan.changes.map((c) => `${purposeOf(c.kid)} key ${c.kid}`).join(', ')}`
      + (plan.forced ? `; forced while unsafe: ${unsafe.map((c) => `${c.kid} (${c.reason})`).join('; ')}` : '')
    const version = await store.transaction(async (tx) => {
      const v = await tx.transitionKeys({
        expectedVersion: keyset.version,
        update: rebindKeyUpdates(this.#masterKeys, keyset.keys, plan.changes),
        audit: this.#audit(input.actor, label(purposes), plan.forced ? 'finalize-force' : 'finalize', notes, now),
      })
      failpoint('finalize:in-transaction')
      return v
    })
    this.#emit({ type: 'finalized', secrets: purposes.map((p) => `jwt-${p}`), kids: plan.changes.map((c) => c.kid), operator: input.actor.operator, at: now })
    return {
      changed: true, forced: plan.forced, checks: plan.checks, keysetVersion: version,
      retired: plan.changes.map((c) => ({ kid: c.kid, purpose: purposeOf(c.kid) })),
    }
  }

  /**
   * The most recently demoted previous key signs again; the current one verifies as previous
   * with a full grace window. Both keys already verify on every instance, so no wait is needed.
   * With `all`, each purpose that has a previous key rolls back; ERR_UNSAFE when none has.
   */
  async rollback(input: { secret?: SecretTarget, actor: Actor }): Promise<KeyChangeReport> {
    const { store } = this.#o
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
    return { changed: true, changes: describe(changes, purposeOf), keysetVersion: version }
  }

  /**
   * Revokes one key: it stops verifying on every instance at the next reload (a `keys`
   * notification). The current key is refused (see `planRevoke`); an unknown kid is
   * `not_found`; a revoked key is left as it is.
   */
  async revoke(input: { kid: string, reason?: string, actor: Actor }): Promise<KeyChangeReport> {
    const { store } = this.#o
    const keyset = await store.getKeyset()
    const now = this.#clock.now()
    const reason = maskSecrets(input.reason ?? 'revoked by operator')
    const plan = planRevoke(keyset.keys, input.kid, now, reason)
    if (plan.kind === 'unknown') throw new ServiceError('not_found', 'No key has that kid')
    if (plan.kind === 'unchanged') return { changed: false, changes: [], keysetVersion: keyset.version }
    const version = await store.transitionKeys({
      expectedVersion: keyset.version,
      update: rebindKeyUpdates(this.#masterKeys, keyset.keys, [plan.change]),
      audit: this.#audit(input.actor, `jwt-${plan.key.purpose}`, 'revoke', `${plan.key.purpose} key ${plan.key.kid} ${plan.key.state}→revoked: ${reason}`, now),
    })
    return { changed: true, changes: describe([plan.change], () => plan.key.purpose), keysetVersion: version }
  }

  /**
   * Compromise response, in one transaction: every verifying key of the purposes is revoked
   * and a new current key inserted, every session ends, and the global not-before refuses
   * every token issued before now. Retried on a conflict (an emergency must not lose to a
   * concurrent rotation). The report adds where the revoked keys were used over the last 24 h.
   */
  async emergency(input: { secret?: SecretTarget, reason: string, actor: Actor }): Promise<EmergencyReport> {
    const { store, masterKey } = this.#o
    const purposes = purposesOf(input.secret)
    // Notes and reasons are kept in the audit log and key rows: a pasted secret is masked.
    const reason = input.reason.trim() === '' ? 'not given' : maskSecrets(input.reason.trim())
    for (let attempt = 1; ; attempt++) {
      const keyset = await store.getKeyset()
      const now = this.#clock.now()
      const changes = planEmergency(keyset.keys, purposes, now, `emergency: ${reason}`)
      const insert = purposes.map((p) => newManagedKey(masterKey, p, now, this.#algFor(p, keyset.keys)))
      const revokedKids = new Set(changes.map((c) => c.kid))
      const [usage, live] = await Promise.all([store.usageSince(now - DAY_MS), store.countLiveSessionsByKid(now)])
      const notBefore = Math.floor(now / 1000)
      let result: { version: number, ended: number }
      try {
        result = await store.transaction(async (tx) => {
          const version = await tx.transitionKeys({
            expectedVersion: keyset.version,
            update: rebindKeyUpdates(this.#masterKeys, keyset.keys, changes),
            insert,
            audit: this.#audit(input.actor, label(purposes), 'emergency',
              `revoked ${changes.map((c) => c.kid).join(', ') || 'no key'}; new ${insert.map((k) => `${k.purpose} key ${k.kid}`).join(' and ')}; every session ended; not-before ${new Date(notBefore * 1000).toISOString()}; reason: ${reason}`, now),
          })
          const ended = await tx.revokeAllSessions('emergency', now)
          failpoint('emergency:in-transaction')
          await tx.setSetting(NOT_BEFORE_SETTING, String(notBefore))
          await this.#markRotated(tx, purposes, now, 'emergency')
          return { version, ended }
        })
      } catch (err) {
        if (hasCode(err, 'ERR_CONFLICT') && attempt < 3) continue
        throw err
      }
      failpoint('emergency:after-commit')
      const wait = await this.waitForInstances(result.version, EMERGENCY_ACK_WAIT_MS)
      const purposeOf = (kid: string): string => keyset.keys.find((k) => k.kid === kid)?.purpose ?? '?'
      return {
        reason,
        revoked: changes.map((c) => ({ kid: c.kid, purpose: purposeOf(c.kid), previousState: c.expectState })),
        created: insert.map((k) => ({ kid: k.kid, purpose: k.purpose })),
        sessionsEnded: result.ended,
        notBefore: new Date(notBefore * 1000).toISOString(),
        keysetVersion: result.version,
        usage: usage.filter((u) => revokedKids.has(u.kid)),
        sessionsSigned: [...revokedKids].map((kid) => ({ kid, liveSessions: live.get(kid) ?? 0 })).filter((s) => purposeOf(s.kid) === 'refresh'),
        propagated: wait.acknowledged,
        instances: wait.instances.map((i) => instanceStatus(i, result.version)),
      }
    }
  }
}
