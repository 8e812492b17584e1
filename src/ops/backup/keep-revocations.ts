/**
 * A restore never brings back what was cut after the backup. A backup taken before an
 * emergency (or before a key was revoked, a session ended) holds those keys and sessions as
 * they were: replacing the store with it would make them verify again. So the cuts of the
 * store being replaced are read first and applied to the restored one, in one transaction
 * with the `restore` audit row:
 * - a key revoked in the replaced store stays revoked (when it was the current key in the
 *   backup, a new current key of its purpose is made, as an emergency does);
 * - the global not-before stays at the later of the two;
 * - a session ended since the backup stays ended (an emergency's sweep is covered by its
 *   not-before, so those are not listed one by one);
 * - the managed data keys (`ENCRYPTION_KEY`) stay as the replaced store has them: a data key
 *   made after the backup is carried over (re-sealed under the restore's master key) and keeps
 *   its state, so every value encrypted since still decrypts and the applications keep
 *   encrypting with the key they use; a restore never sets a data key back;
 * - the users' security state, and the audit rows written since the backup (`keep-users.ts`,
 *   `keep-audit.ts`); the backup's instance heartbeats are cleared (those instances are gone).
 */
import { MANAGED_ALGORITHMS, type ManagedAlg } from '../../core/algorithms.ts'
import { AuditLog } from '../../service/audit/audit-log.ts'
import { DATA_KEY_PURPOSE } from '../../core/data-keys.ts'
import { RekeyError } from '../../core/errors.ts'
import { newManagedKey, openKeyMaterial, rebindKeyUpdates, sealKeyMaterial } from '../../service/keys/keys.ts'
import { NOT_BEFORE_SETTING } from '../../service/auth/revocations.ts'
import { openStore } from '../../store/open.ts'
import type { KeyRecord, KeyState, KeyUpdate, NewKey, UserRecord } from '../../store/types.ts'
import { carryAuditRows, describeAuditCarry, planAuditCarry, type AuditCarry, type ReplacedAudit } from './keep-audit.ts'
import { describeUserCarry, keepUsers, type UserCarry } from './keep-users.ts'

/** Sessions ended this long before the backup's time are looked at too: clocks differ. */
const SKEW_MS = 5 * 60_000

/** What the store being replaced has cut: read before the restore, kept after it. */
export interface Cuts {
  readonly revokedKeys: readonly KeyRecord[]
  /** The managed data keys of the replaced store, every state (absent: none could be read). */
  readonly dataKeys?: readonly KeyRecord[]
  /** The global not-before, epoch seconds; 0 when none was set. */
  readonly notBefore: number
  /** Sessions ended since the backup, other than by an emergency's sweep. */
  readonly endedSessions: readonly string[]
  /** Every user, with what guards their sign-in. */
  readonly users: readonly UserRecord[]
  /** The whole audit log, or why it could not be read (the rest is still kept). */
  readonly audit: ReplacedAudit
}

/** What the restore would have brought back, and kept cut instead. Never key material. */
export interface KeptCuts {
  /** Keys revoked in the replaced store that the backup holds unrevoked, with their state there. */
  readonly keys: ReadonlyArray<{ readonly kid: string, readonly purpose: string, readonly stateInBackup: KeyState }>
  /** New current keys, for purposes whose current key in the backup stays revoked. */
  readonly newKeys: ReadonlyArray<{ readonly kid: string, readonly purpose: string }>
  /** Data keys kept as the replaced store has them: made after the backup (`stateInBackup` null), or in another state there. */
  readonly dataKeys?: ReadonlyArray<{ readonly kid: string, readonly state: KeyState, readonly stateInBackup: KeyState | null }>
  /** Sessions live in the backup that stay ended. */
  readonly sessions: number
  /** The not-before kept (ISO-8601), when the backup's was older. */
  readonly notBefore: string | null
}

/** Everything a restore kept from the replaced store. */
export interface KeptState {
  readonly cuts: KeptCuts
  readonly users: UserCarry
  readonly audit: AuditCarry
}

/** Who restores, from what, and with which master keys (the current one first). */
export interface RestoreRecord {
  readonly operator: string
  /** The audit row's notes: which backup (its time, the archive's hash), never a secret. */
  readonly source: string
  readonly masterKey: Buffer
  readonly previousMasterKey?: Buffer | undefined
  readonly now: number
}

const managedAlg = (alg: string): ManagedAlg => MANAGED_ALGORITHMS.find((a) => a === alg) ?? 'HS256'

function readSetting(value: string | null): number {
  const n = Number(value ?? 0)
  return Number.isFinite(n) && n > 0 ? n : 0
}

/** The cuts of the store at `location`, which is about to be replaced by a backup made at `backupAt` (epoch ms). */
export async function readCuts(location: string, backupAt: number): Promise<Cuts> {
  const store = await openStore(location)
  try {
    const keys = await store.listKeys()
    const audit: ReplacedAudit = await store.listAudit().then((rows) => ({ rows }), (err: unknown) => ({ unreadable: err instanceof Error ? err.message : String(err) }))
    return {
      audit,
      users: await store.listUsers(),
      revokedKeys: keys.filter((k) => k.state === 'revoked' && k.purpose !== DATA_KEY_PURPOSE),
      dataKeys: keys.filter((k) => k.purpose === DATA_KEY_PURPOSE),
      notBefore: readSetting(await store.getSetting(NOT_BEFORE_SETTING)),
      endedSessions: (await store.listRevokedSessions(backupAt - SKEW_MS, ['emergency'])).map((s) => s.id),
    }
  } finally {
    await store.close()
  }
}

/** One line for people: what the restore would have brought back; `null` when nothing. */
export function describeKeptCuts(kept: KeptCuts): string | null {
  const parts: string[] = []
  if (kept.keys.length > 0) parts.push(`${kept.keys.length} revoked key(s) (${kept.keys.map((k) => `${k.purpose} ${k.kid}, ${k.stateInBackup} in the backup`).join('; ')}) stay revoked`)
  const data = kept.dataKeys ?? []
  if (data.length > 0) parts.push(`${data.length} data key(s) kept as in the replaced store (${data.map((k) => `${k.kid} ${k.state}, ${k.stateInBackup === null ? 'made after the backup' : `${k.stateInBackup} in the backup`}`).join('; ')}): values encrypted since still decrypt`)
  if (kept.newKeys.length > 0) parts.push(`new current key(s) ${kept.newKeys.map((k) => `${k.purpose} ${k.kid}`).join(', ')} sign instead`)
  if (kept.notBefore !== null) parts.push(`the not-before of ${kept.notBefore} (an emergency) stays: older tokens are still refused`)
  if (kept.sessions > 0) parts.push(`${kept.sessions} session(s) ended since the backup stay ended`)
  return parts.length === 0 ? null : parts.join('; ')
}

/**
 * Applies `cuts` (of the replaced store; `null` when there was none) to the restored store at
 * `location`, and appends the `restore` audit row, all in one transaction.
 */
export async function keepCuts(location: string, cuts: Cuts | null, record: RestoreRecord): Promise<KeptState> {
  const store = await openStore(location)
  try {
    const masterKeys = [record.masterKey, ...(record.previousMasterKey === undefined ? [] : [record.previousMasterKey])]
    const audit = await AuditLog.open(store, { current: record.masterKey, previous: record.previousMasterKey })
    const keyset = await store.getKeyset()
    const data = planDataKeys(keyset.keys, cuts?.dataKeys ?? [], masterKeys, record.masterKey)
    // Data keys follow the replaced store (below), never the revocation rules of signing keys.
    const revived = (cuts?.revokedKeys ?? []).filter((cut) => cut.purpose !== DATA_KEY_PURPOSE).flatMap((cut) => {
      const restored = keyset.keys.find((k) => k.kid === cut.kid && k.purpose === cut.purpose)
      return restored === undefined || restored.state === 'revoked' ? [] : [{ cut, restored }]
    })
    const updates: KeyUpdate[] = [...revived.map(({ cut, restored }): KeyUpdate => ({
      kid: cut.kid, expectState: restored.state, state: 'revoked', revokedAt: cut.revokedAt ?? record.now, revokeReason: cut.revokeReason ?? 'revoked after the backup',
    })), ...data.updates]
    // A purpose whose current key stays revoked needs another one to sign, as after an emergency.
    const insert: NewKey[] = revived.filter(({ restored }) => restored.state === 'current')
      .map(({ restored }) => newManagedKey(record.masterKey, restored.purpose, record.now, managedAlg(restored.alg)))
    const inserted = insert.map((k) => ({ kid: k.kid, purpose: k.purpose }))
    insert.push(...data.insert)
    const notBefore = (cuts?.notBefore ?? 0) > readSetting(await store.getSetting(NOT_BEFORE_SETTING)) ? cuts?.notBefore ?? 0 : 0
    const cutsKept = {
      keys: revived.map(({ restored }) => ({ kid: restored.kid, purpose: restored.purpose, stateInBackup: restored.state })),
      newKeys: inserted,
      ...(data.kept.length > 0 ? { dataKeys: data.kept } : {}),
      notBefore: notBefore > 0 ? new Date(notBefore * 1000).toISOString() : null,
    }
    const carry = planAuditCarry(await store.listAudit(), cuts?.audit ?? null)
    await audit.refresh()
    return await store.transaction(async (tx) => {
      // History first: the restore row chains after the rows the replaced store wrote.
      await carryAuditRows(tx, carry.rows)
      if (updates.length > 0 || insert.length > 0) await tx.transitionKeys({ expectedVersion: keyset.version, update: rebindKeyUpdates(masterKeys, keyset.keys, updates), insert })
      let ended = 0
      for (const id of cuts?.endedSessions ?? []) if (await tx.revokeFamily(id, 'restore', record.now)) ended++
      if (notBefore > 0) await tx.setSetting(NOT_BEFORE_SETTING, String(notBefore))
      const users = await keepUsers(tx, cuts?.users ?? [])
      // The backup's instances are gone: their heartbeats would list them, and refuse the next restore.
      await tx.pruneInstances(Number.MAX_SAFE_INTEGER)
      const kept = { cuts: { ...cutsKept, sessions: ended }, users, audit: carry.carry }
      const what = [describeKeptCuts(kept.cuts), describeUserCarry(users), describeAuditCarry(carry.carry)].filter((p) => p !== null)
      await audit.append({ at: record.now, secret: 'store', operator: record.operator, method: 'restore', notes: `${record.source}${what.length === 0 ? '' : `; kept from the replaced store: ${what.join('; ')}`}` }, tx)
      return kept
    })
  } finally {
    await store.close()
  }
}

/**
 * The data keys of the restored store set to what the replaced store holds: each data key
 * there keeps its state (a row of the backup in another state is moved, one the backup lacks
 * is inserted, re-sealed under the restore's master key), and a data key only the backup
 * holds stays readable as `previous`. A carried key that opens under none of the master keys
 * refuses the restore (ERR_UNSAFE): its values would become unreadable.
 */
export function planDataKeys(restored: readonly KeyRecord[], replaced: readonly KeyRecord[], masterKeys: readonly Buffer[], masterKey: Buffer): { updates: KeyUpdate[], insert: NewKey[], kept: Array<{ kid: string, state: KeyState, stateInBackup: KeyState | null }> } {
  const updates: KeyUpdate[] = []
  const insert: NewKey[] = []
  const kept: Array<{ kid: string, state: KeyState, stateInBackup: KeyState | null }> = []
  if (replaced.length === 0) return { updates, insert, kept }
  const times = (k: KeyRecord) => ({ activatedAt: k.activatedAt, demotedAt: k.demotedAt, retireAfter: k.retireAfter, retiredAt: k.retiredAt, revokedAt: k.revokedAt, revokeReason: k.revokeReason })
  for (const theirs of replaced) {
    const ours = restored.find((k) => k.kid === theirs.kid)
    if (ours !== undefined && ours.purpose !== DATA_KEY_PURPOSE) continue // a kid of another purpose: not ours to change
    if (ours !== undefined && ours.state === theirs.state) continue
    let jwk: Record<string, unknown>
    try {
      jwk = openKeyMaterial(masterKeys, theirs).jwk
    } catch (err) {
      throw new RekeyError('ERR_UNSAFE', `restore refused: the replaced store's data key ${theirs.kid} (${theirs.state}) does not open with the master key(s) of this restore (${err instanceof Error ? err.message : String(err)}); the values encrypted under it would become unreadable. Give the replaced store's master key as REKEY_MASTER_KEY_PREV`)
    }
    const sealedMaterial = sealKeyMaterial(masterKey, theirs, jwk)
    if (ours === undefined) insert.push({ kid: theirs.kid, purpose: theirs.purpose, alg: theirs.alg, state: theirs.state, sealedMaterial, createdAt: theirs.createdAt, ...times(theirs) })
    else updates.push({ kid: theirs.kid, expectState: ours.state, state: theirs.state, sealedMaterial, ...times(theirs) })
    kept.push({ kid: theirs.kid, state: theirs.state, stateInBackup: ours?.state ?? null })
  }
  const theirCurrent = replaced.some((k) => k.state === 'current')
  for (const ours of restored) {
    if (ours.purpose !== DATA_KEY_PURPOSE || replaced.some((k) => k.kid === ours.kid)) continue
    // Only in the backup: it still decrypts, and never encrypts beside the replaced store's current key.
    if (theirCurrent && (ours.state === 'current' || ours.state === 'next')) {
      updates.push(...rebindKeyUpdates(masterKeys, restored, [{ kid: ours.kid, expectState: ours.state, state: 'previous' }]))
      kept.push({ kid: ours.kid, state: 'previous', stateInBackup: ours.state })
    }
  }
  return { updates, insert, kept }
}
