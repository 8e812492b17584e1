/**
 * Master-key rotation: every value sealed under the old master key is opened with it and
 * sealed under the new one, in one transaction with its audit rows, and the audit chain
 * continues under the new key (see `audit-segments.ts`).
 *
 * What is sealed under the master key, and what happens to it:
 * - managed keys (`keys.sealed_material`, bound to kid, purpose, algorithm and state): re-wrapped;
 * - sealed settings `secret.<VAR>` (db-rotation URLs, AAD `setting:secret.<VAR>`): re-wrapped;
 *   they are found by the names the inventory and the audit log know (every rotate-db writes both);
 * - refresh successor blobs (`refresh_tokens.successor_blob`): not re-wrapped; they only serve a
 *   second use inside the overlap window (seconds), and the service opens them with either key
 *   while REKEY_MASTER_KEY_PREV is set;
 * - the audit chain's HMAC key: a new segment starts under the new key.
 * Backup archives are encrypted with their own age recipients, not the master key.
 */
import { FALLBACK_CADENCE_DAYS } from '../../core/cadence.ts'
import { isRekeyError, RekeyError } from '../../core/errors.ts'
import { openWithAny, seal } from '../../core/seal.ts'
import type { Store } from '../../store/store.ts'
import { auditHasher } from '../audit/audit-hash.ts'
import { MASTER_KEY_ID_SETTING } from '../audit/audit-log.ts'
import { ANCHOR_METHOD, anchorNotes, masterKeyId, ROTATION_METHOD, rowsDigest, verifyAuditLog } from '../audit/segments.ts'
import { systemClock, type Clock } from '../clock.ts'
import { openKeyMaterial, sealKeyMaterial } from './keys.ts'

export { MASTER_KEY_ID_SETTING }
/** The inventory name of the master key. */
export const MASTER_KEY_SECRET = 'master-key'
const SETTING_PREFIX = 'secret.'

/** What {@link rotateMasterKey} did. */
export interface MasterKeyRotationReport {
  readonly changed: boolean
  readonly oldKeyId: string
  readonly newKeyId: string
  /** Keys re-wrapped (those already under the new key are counted in `alreadyNew`). */
  readonly keys: number
  readonly alreadyNew: number
  /** Names of the sealed settings re-wrapped. */
  readonly settings: readonly string[]
  /** Sequence numbers of the rotation row (old key) and the anchor row (new key). */
  readonly audit: { readonly rotation: number, readonly anchor: number } | null
}

const unopenable = (what: string): RekeyError => new RekeyError('ERR_CONFIG',
  `REKEY_MASTER_KEY_PREV does not open ${what}: set it to the master key the store was sealed with (and REKEY_MASTER_KEY to the new one)`)

/**
 * Re-wraps everything sealed under `oldKey` with `newKey`. Refused with ERR_CONFIG when the
 * keys are equal or `oldKey` does not open a stored value, and with ERR_UNSAFE when the audit
 * chain does not verify under the old key (a broken chain must not be sealed over).
 * Idempotent: once the store is under the new key, nothing changes.
 */
export async function rotateMasterKey(input: { store: Store, oldKey: Buffer, newKey: Buffer, operator: string, clock?: Clock }): Promise<MasterKeyRotationReport> {
  const { store, oldKey, newKey } = input
  const now = (input.clock ?? systemClock).now()
  const oldKeyId = masterKeyId(oldKey)
  const newKeyId = masterKeyId(newKey)
  if (oldKey.equals(newKey)) throw new RekeyError('ERR_CONFIG', 'REKEY_MASTER_KEY_PREV is the same key as REKEY_MASTER_KEY: set REKEY_MASTER_KEY to a new key (rekey gen --encoding base64)')
  const base = { oldKeyId, newKeyId, keys: 0, alreadyNew: 0, settings: [], audit: null }
  if (await store.getSetting(MASTER_KEY_ID_SETTING) === newKeyId) return { ...base, changed: false }

  const keyset = await store.getKeyset()
  let alreadyNew = 0
  const rewrapped = keyset.keys.map((k) => {
    let jwk: Record<string, unknown>
    try {
      jwk = openKeyMaterial([oldKey], k).jwk
    } catch (err) {
      if (isRekeyError(err) && err.code === 'ERR_UNSAFE') throw err // a row changed behind rekey's back is not re-wrapped over
      try {
        openKeyMaterial([newKey], k)
      } catch (again) {
        if (isRekeyError(again) && again.code === 'ERR_UNSAFE') throw again
        throw unopenable(`the ${k.purpose} key ${k.kid}`)
      }
      alreadyNew++
      return null
    }
    return { kid: k.kid, expectState: k.state, sealedMaterial: sealKeyMaterial(newKey, k, jwk) }
  }).filter((u) => u !== null)
  if (keyset.keys.length > 0 && rewrapped.length === 0) throw unopenable('any key of this store (they are all sealed under another key)')

  const names = new Set<string>([...(await store.listSecrets()).map((s) => s.name)])
  const rows = await store.listAudit()
  for (const row of rows) names.add(row.secret)
  const settings: Array<{ name: string, value: string }> = []
  for (const name of [...names].sort()) {
    const setting = `${SETTING_PREFIX}${name}`
    const sealed = await store.getSetting(setting)
    if (sealed === null) continue
    const aad = `setting:${setting}`
    let plain: Buffer
    try {
      plain = openWithAny([oldKey, newKey], sealed, aad)
    } catch {
      throw unopenable(`the sealed setting ${setting}`)
    }
    settings.push({ name: setting, value: seal(newKey, plain, aad) })
  }

  const chain = verifyAuditLog(rows, [oldKey])
  if (rows.length > 0 && !chain.ok) {
    throw new RekeyError('ERR_UNSAFE', `master-key rotation refused: the audit chain does not verify under REKEY_MASTER_KEY_PREV (row ${chain.firstBad?.seq ?? '?'}: ${chain.firstBad?.reason ?? '?'}); run rekey audit --verify`)
  }

  const audit = await store.transaction(async (tx) => {
    if (rewrapped.length > 0) await tx.transitionKeys({ expectedVersion: keyset.version, update: rewrapped })
    for (const s of settings) await tx.setSetting(s.name, s.value)
    const existing = await tx.getSecret(MASTER_KEY_SECRET)
    if (existing === null) await tx.upsertSecret({ name: MASTER_KEY_SECRET, kind: 'master-key', cadenceDays: FALLBACK_CADENCE_DAYS })
    await tx.markRotated({ name: MASTER_KEY_SECRET, at: now, method: 'rotate' })
    const rotation = await tx.appendAudit({
      at: now, secret: MASTER_KEY_SECRET, operator: input.operator, method: ROTATION_METHOD, requestId: null,
      notes: `re-wrapped ${rewrapped.length} key(s)${settings.length === 0 ? '' : ` and ${settings.map((s) => s.name).join(', ')}`} from master key k:${oldKeyId} to k:${newKeyId}; the audit chain continues under the new key from the next row`,
    }, auditHasher(oldKey))
    const covered = await tx.listAudit()
    const anchor = await tx.appendAudit({
      at: now, secret: MASTER_KEY_SECRET, operator: input.operator, method: ANCHOR_METHOD, requestId: null,
      notes: anchorNotes({ newKeyId, previousKeyId: oldKeyId, coveredSeq: rotation.seq, digest: rowsDigest(covered) }, rotation.hash),
    }, auditHasher(newKey))
    await tx.setSetting(MASTER_KEY_ID_SETTING, newKeyId)
    return { rotation: rotation.seq, anchor: anchor.seq }
  })
  return { changed: true, oldKeyId, newKeyId, keys: rewrapped.length, alreadyNew, settings: settings.map((s) => s.name), audit }
}
