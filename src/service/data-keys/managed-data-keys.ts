/**
 * Managed data keys: the `ENCRYPTION_KEY` of an app that keeps its data keys in rekey's store
 * instead of its environment. They are rows of the `keys` table with purpose `data` and
 * algorithm `A256GCM`, sealed under the master key and bound to kid, purpose, algorithm and
 * state like the signing keys, and they go through the same states:
 *
 *   rotate    a new key is staged as `next` (every cipher decrypts with it), and once every
 *             live instance (apps with `Cipher.fromStore`, `rekey serve`) has loaded it, it
 *             becomes `current` (encrypts); the old key decrypts as `previous`;
 *   finalize  `previous` → `retired`, once no registered column holds a value of it (the CLI
 *             recounts the columns first: the evidence is in the application's database);
 *   rollback  the previous key encrypts again; the newer one decrypts as previous;
 *   --hard    the old keys are revoked once the new key encrypts everywhere and a recount finds
 *             no value of theirs (the CLI refuses beforehand while values of them remain, and
 *             keeps them as previous when values were written under them while it waited).
 *
 * There is no time rule: a data key is safe to drop when no value uses it, whatever its age.
 * Every step is one store transaction guarded by the key-set version, with its audit row.
 */
import { createSecretKey, randomBytes } from 'node:crypto'
import { cadenceDaysOf, DEFAULT_POLICY, type CadencePolicy } from '../../core/cadence.ts'
import { DATA_KEY_ALG, DATA_KEY_BYTES, DATA_KEY_PURPOSE, type DataKey } from '../../core/data-keys.ts'
import { RekeyError } from '../../core/errors.ts'
import { deriveKid } from '../../core/kid.ts'
import { currentKey, planFinalize, planPromote, planRollback, planStage, type KeyChange, type RotationPolicy } from '../../core/rotation-rules.ts'
import type { KeyState } from '../../core/states.ts'
import type { Store, StoreOperations } from '../../store/store.ts'
import type { AuditWrite, ComputeAuditHash, KeyRecord, Keyset, NewKey } from '../../store/types.ts'
import { auditWrite } from '../audit/audit-hash.ts'
import { systemClock, type Clock } from '../clock.ts'
import { dataKeyAccessKey, openDataKeyMaterial, rebindKeyUpdates, sealKeyMaterial } from '../keys/keys.ts'
import { DEFAULT_ROTATE_TIMEOUT_MS, type Actor, type KeyRotation } from '../keys/rotation.ts'
import { instanceStatus, type InstanceStatus } from '../keys/key-views.ts'

export { DATA_KEY_ALG, DATA_KEY_PURPOSE }
/** Their name in the audit log and the secret inventory (the variable they replace). */
export const DATA_KEY_SECRET = 'ENCRYPTION_KEY'

// The rules' grace window is a token lifetime; a data key has none. Its `retireAfter` is only
// bookkeeping: finalize is judged on the column counts, never on time.
const DATA_POLICY: RotationPolicy = Object.freeze({ lifetimes: Object.freeze({ [DATA_KEY_PURPOSE]: 1 }), skewSeconds: 0 })

/** A new managed data key: 32 random bytes, sealed for `state`. The kid is derived from the key and reveals nothing. */
export function newDataKey(masterKey: Buffer, now: number, state: KeyState): NewKey {
  const raw = randomBytes(DATA_KEY_BYTES)
  const kid = deriveKid(createSecretKey(raw))
  const sealedMaterial = sealKeyMaterial(masterKey, { kid, purpose: DATA_KEY_PURPOSE, alg: DATA_KEY_ALG, state }, { kty: 'oct', alg: DATA_KEY_ALG, k: raw.toString('base64url') })
  raw.fill(0)
  return { kid, purpose: DATA_KEY_PURPOSE, alg: DATA_KEY_ALG, state, sealedMaterial, createdAt: now, activatedAt: state === 'current' ? now : null }
}

/** The data-key rows of a key set, oldest first. */
export function dataKeyRecords(keyset: Keyset): KeyRecord[] {
  return keyset.keys.filter((k) => k.purpose === DATA_KEY_PURPOSE)
}

/** The data-key access keys of master keys (what a process holding the master key opens data keys with). */
export function accessKeysOf(masterKeys: readonly Buffer[]): Buffer[] {
  return masterKeys.map(dataKeyAccessKey)
}

/**
 * The data keys of a key set as a cipher holds them, opened with any of `accessKeys` (see
 * {@link accessKeysOf}). A row changed behind rekey's back is refused (ERR_UNSAFE), like a
 * signing key's; retired and revoked keys are kept by kid so their values are refused by name.
 */
export function dataKeysOf(keyset: Keyset, accessKeys: readonly Buffer[]): DataKey[] {
  return dataKeyRecords(keyset).map((record) => {
    const jwk = openDataKeyMaterial(accessKeys, record)
    const bytes = typeof jwk.k === 'string' ? Buffer.from(jwk.k, 'base64url') : Buffer.alloc(0)
    if (jwk.kty !== 'oct' || bytes.length !== DATA_KEY_BYTES) throw new RekeyError('ERR_CONFIG', `the stored data key ${record.kid} is not a ${DATA_KEY_BYTES}-byte AES key`)
    return { kid: record.kid, state: record.state, key: createSecretKey(bytes), label: `data key ${record.kid}` }
  })
}

/** A data-key step's report: kids, states and instants only. */
export interface DataKeyReport {
  readonly secret: typeof DATA_KEY_SECRET
  /** rotate: the key created as the first data key, or staged. */
  readonly created?: { readonly kid: string, readonly state: KeyState }
  readonly resumed?: boolean
  readonly hard?: boolean
  readonly promoted?: boolean
  readonly changes: readonly { readonly kid: string, readonly from: string, readonly to: string }[]
  readonly keysetVersion: number
  readonly waitedMs?: number
  readonly instances?: readonly (InstanceStatus & { acknowledged: boolean })[]
  /** Every live instance has loaded the final key set (the new key encrypts everywhere). */
  readonly everywhere?: boolean
  /** --hard: why the old keys were kept as previous instead of revoked (values of theirs, or an instance behind). */
  readonly kept?: { readonly kids: readonly string[], readonly problems: readonly string[] }
}

/** What {@link DataKeyLifecycle} needs: the signing keys' lifecycle lends its instance wait. */
export interface DataKeyLifecycleOptions {
  readonly store: Store
  readonly masterKey: Buffer
  readonly previousMasterKey?: Buffer
  readonly computeHash: ComputeAuditHash
  readonly rotation: KeyRotation
  readonly clock?: Clock
  readonly cadencePolicy?: CadencePolicy
}

const describe = (changes: readonly KeyChange[]): DataKeyReport['changes'] => changes.map((c) => ({ kid: c.kid, from: c.expectState ?? '?', to: c.state ?? '?' }))
const notesOf = (changes: readonly KeyChange[]): string => changes.map((c) => `data key ${c.kid} ${c.expectState}→${c.state}`).join('; ')

export class DataKeyLifecycle {
  readonly #options: DataKeyLifecycleOptions
  readonly #clock: Clock

  constructor(options: DataKeyLifecycleOptions) {
    this.#options = options
    this.#clock = options.clock ?? systemClock
  }

  get #masterKeys(): Buffer[] {
    return this.#options.previousMasterKey === undefined ? [this.#options.masterKey] : [this.#options.masterKey, this.#options.previousMasterKey]
  }

  #audit(actor: Actor, method: string, notes: string, at: number): AuditWrite {
    return auditWrite(this.#options.computeHash, { at, secret: DATA_KEY_SECRET, operator: actor.operator, method, notes, requestId: actor.requestId })
  }

  async #markRotated(tx: StoreOperations, at: number, method: string): Promise<void> {
    const cadenceDays = cadenceDaysOf(this.#options.cadencePolicy ?? DEFAULT_POLICY, DATA_KEY_SECRET, 'encryption')
    const existing = await tx.getSecret(DATA_KEY_SECRET)
    if (existing === null || existing.cadenceDays !== cadenceDays) await tx.upsertSecret({ name: DATA_KEY_SECRET, kind: existing?.kind ?? 'encryption', cadenceDays })
    await tx.markRotated({ name: DATA_KEY_SECRET, at, method })
  }

  /** The managed data keys (kid, state, times), never their material. */
  async keys(): Promise<KeyRecord[]> {
    return dataKeyRecords(await this.#options.store.getKeyset())
  }

  /**
   * Rotation. A store without a data key gets its first one, `current` at once (no value and
   * no cipher can depend on a key that did not exist). Otherwise a new key is staged as `next`
   * (or the staged one reused), every live instance is waited for, then it is promoted; with
   * `hard`, the old keys are revoked (the caller has checked that no value of theirs remains).
   * `promoted: false` after `timeoutMs` without every acknowledgement: the key stays staged.
   */
  async rotate(input: {
    hard?: boolean, timeoutMs?: number, actor: Actor
    /** --hard: called once the new key encrypts everywhere, with the kids about to be revoked; what still holds values of them (none: revoke). */
    recount?: (kids: readonly string[]) => Promise<readonly string[]>
  }): Promise<DataKeyReport> {
    const { store, masterKey, rotation } = this.#options
    const hard = input.hard === true
    const keyset = await store.getKeyset()
    const now = this.#clock.now()
    const mine = dataKeyRecords(keyset)
    if (!mine.some((k) => k.state === 'current')) {
      if (mine.some((k) => k.state === 'next' || k.state === 'previous')) {
        throw new RekeyError('ERR_CONFLICT', 'the data keys have no current key but a next or previous one: the key set was changed outside rekey')
      }
      const key = newDataKey(masterKey, now, 'current')
      const version = await store.transaction(async (tx) => {
        const v = await tx.transitionKeys({ expectedVersion: keyset.version, insert: [key], audit: this.#audit(input.actor, 'create', `created data key ${key.kid} (current): the first managed data key`, now) })
        await this.#markRotated(tx, now, 'create')
        return v
      })
      const seen = await rotation.waitForInstances(version, input.timeoutMs ?? DEFAULT_ROTATE_TIMEOUT_MS)
      return {
        secret: DATA_KEY_SECRET, created: { kid: key.kid, state: 'current' }, hard, promoted: true, changes: [], keysetVersion: version,
        waitedMs: seen.waitedMs, instances: seen.instances.map((i) => ({ ...instanceStatus(i, version), acknowledged: i.keysetVersion >= version })), everywhere: seen.acknowledged,
      }
    }
    const plan = planStage(keyset.keys, DATA_KEY_PURPOSE)
    let version = keyset.version
    let staged: string
    if (plan.stage) {
      const key = newDataKey(masterKey, now, 'next')
      staged = key.kid
      version = await store.transitionKeys({
        expectedVersion: keyset.version, insert: [key],
        audit: this.#audit(input.actor, 'rotate-stage', `staged data key ${key.kid} as next${hard ? ' (hard rotation)' : ''}; it encrypts once every live instance can decrypt with it`, now),
      })
    } else {
      staged = plan.next
    }
    const timeoutMs = input.timeoutMs ?? DEFAULT_ROTATE_TIMEOUT_MS
    const wait = await rotation.waitForInstances(version, timeoutMs)
    const acked = (v: number) => (i: Parameters<typeof instanceStatus>[0]) => ({ ...instanceStatus(i, v), acknowledged: i.keysetVersion >= v })
    const created = { kid: staged, state: 'next' as const }
    if (!wait.acknowledged) {
      return { secret: DATA_KEY_SECRET, created, resumed: !plan.stage, hard, promoted: false, changes: [], keysetVersion: version, waitedMs: wait.waitedMs, instances: wait.instances.map(acked(version)), everywhere: false }
    }
    const fresh = await store.getKeyset()
    const promotedAt = this.#clock.now()
    // Promoted as a soft rotation even with --hard: an instance keeps encrypting with the old key
    // until it has loaded the promotion, so the old keys are revoked only after that (below).
    const changes = planPromote(fresh.keys, DATA_KEY_PURPOSE, promotedAt, DATA_POLICY, { hard: false })
    if (changes === null || !changes.some((c) => c.kid === staged && c.state === 'current')) {
      throw new RekeyError('ERR_CONFLICT', `the staged data key ${staged} is no longer next: another operation promoted or revoked it first`)
    }
    const promotedVersion = await store.transaction(async (tx) => {
      const v = await tx.transitionKeys({
        expectedVersion: fresh.version,
        update: rebindKeyUpdates(this.#masterKeys, fresh.keys, changes),
        audit: this.#audit(input.actor, hard ? 'rotate-hard' : 'rotate', `${notesOf(changes)}${hard ? '; the old keys are revoked once no instance encrypts with them and no value of theirs remains' : '; the old key decrypts until finalize (after rekey rewrap)'}`, promotedAt),
      })
      await this.#markRotated(tx, promotedAt, hard ? 'rotate-hard' : 'rotate')
      return v
    })
    const signing = await rotation.waitForInstances(promotedVersion, Math.max(0, timeoutMs - wait.waitedMs))
    const report: DataKeyReport = {
      secret: DATA_KEY_SECRET, created, resumed: !plan.stage, hard, promoted: true, changes: describe(changes), keysetVersion: promotedVersion,
      waitedMs: wait.waitedMs + signing.waitedMs, instances: signing.instances.map(acked(promotedVersion)), everywhere: signing.acknowledged,
    }
    if (!hard) return report
    const dropped = dataKeyRecords(fresh).filter((k) => k.state === 'current' || k.state === 'previous').map((k) => k.kid)
    if (!signing.acknowledged) {
      return { ...report, kept: { kids: dropped, problems: ['not every instance has loaded the new key yet: it may still encrypt with the old one'] } }
    }
    const problems = input.recount === undefined ? [] : await input.recount(dropped)
    if (problems.length > 0) return { ...report, kept: { kids: dropped, problems } }
    const revoked = await this.#revokeDropped(dropped, input.actor)
    return { ...report, changes: [...report.changes, ...describe(revoked.changes)], keysetVersion: revoked.version }
  }

  /** --hard, last step: the dropped keys still `previous` are revoked, in one transaction with its audit row. */
  async #revokeDropped(kids: readonly string[], actor: Actor): Promise<{ changes: KeyChange[], version: number }> {
    const { store } = this.#options
    const keyset = await store.getKeyset()
    const now = this.#clock.now()
    const changes: KeyChange[] = dataKeyRecords(keyset).filter((k) => kids.includes(k.kid) && k.state === 'previous')
      .map((k) => ({ kid: k.kid, expectState: 'previous', state: 'revoked', revokedAt: now, revokeReason: 'rotate --hard' }))
    if (changes.length === 0) return { changes, version: keyset.version }
    const version = await store.transitionKeys({
      expectedVersion: keyset.version,
      update: rebindKeyUpdates(this.#masterKeys, keyset.keys, changes),
      audit: this.#audit(actor, 'rotate-hard', `${notesOf(changes)}: no instance encrypts with them and no counted value uses them`, now),
    })
    return { changes, version }
  }

  /** Retires the previous data keys. The caller has checked the column counts (or was told `--force`). */
  async finalize(input: { actor: Actor, notes?: string }): Promise<DataKeyReport> {
    const { store } = this.#options
    const keyset = await store.getKeyset()
    const now = this.#clock.now()
    const plan = planFinalize(keyset.keys, [DATA_KEY_PURPOSE], now, DATA_POLICY, new Map(), { force: true })
    if (plan.changes.length === 0) return { secret: DATA_KEY_SECRET, changes: [], keysetVersion: keyset.version }
    const version = await store.transitionKeys({
      expectedVersion: keyset.version,
      update: rebindKeyUpdates(this.#masterKeys, keyset.keys, plan.changes),
      audit: this.#audit(input.actor, 'finalize', `retired ${plan.changes.map((c) => `data key ${c.kid}`).join(', ')}${input.notes === undefined ? '' : `; ${input.notes}`}`, now),
    })
    return { secret: DATA_KEY_SECRET, changes: describe(plan.changes), keysetVersion: version }
  }

  /** The most recently demoted previous key encrypts again; the current one decrypts as previous. */
  async rollback(input: { actor: Actor }): Promise<DataKeyReport> {
    const { store } = this.#options
    const keyset = await store.getKeyset()
    if (!dataKeyRecords(keyset).some((k) => k.state === 'current')) {
      throw new RekeyError('ERR_UNSAFE', 'rollback refused: the store holds no managed data key (create one with rekey rotate --secret ENCRYPTION_KEY)')
    }
    const now = this.#clock.now()
    const changes = planRollback(keyset.keys, DATA_KEY_PURPOSE, now, DATA_POLICY)
    const version = await store.transitionKeys({
      expectedVersion: keyset.version,
      update: rebindKeyUpdates(this.#masterKeys, keyset.keys, changes),
      audit: this.#audit(input.actor, 'rollback', notesOf(changes), now),
    })
    return { secret: DATA_KEY_SECRET, changes: describe(changes), keysetVersion: version }
  }

  /** The kid of the current data key, or null when the store holds none. */
  async currentKid(): Promise<string | null> {
    const keyset = await this.#options.store.getKeyset()
    return dataKeyRecords(keyset).some((k) => k.state === 'current') ? currentKey(keyset.keys, DATA_KEY_PURPOSE).kid : null
  }
}
