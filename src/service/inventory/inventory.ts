/**
 * The secret inventory: which secrets rekey tracks, when each was last rotated, and which
 * are due. Every change to it writes its audit row in the same transaction.
 */
import { cadenceDaysOf, dueStatus, guessKind, type CadencePolicy, type DueState } from '../../core/cadence.ts'
import { maskSecrets } from '../../core/mask.ts'
import type { Store, StoreOperations } from '../../store/store.ts'
import type { SecretRecord } from '../../store/types.ts'
import { auditEvent, type AuditFields, type AuditLog } from '../audit/audit-log.ts'

/** A rotation to record: the audit fields plus what the inventory needs. */
export interface RotationInput extends AuditFields {
  /** The kind to file it under; default: the stored kind, else a guess from the name. */
  readonly kind?: string
  /** When the new secret took effect, epoch ms. Default: the event time. */
  readonly rotatedAt?: number
  /** Notes to keep on the secret itself (masked like the audit notes); default: keep the stored ones. */
  readonly secretNotes?: string
}

/** What {@link recordRotationIn} did. */
export interface RecordedRotation {
  readonly secret: SecretRecord
  /** The audit row's sequence number. */
  readonly seq: number
}

async function fileSecret(tx: StoreOperations, policy: CadencePolicy, name: string, kind: string | undefined): Promise<SecretRecord> {
  const existing = await tx.getSecret(name)
  const chosen = kind ?? existing?.kind ?? guessKind(name)
  const cadenceDays = cadenceDaysOf(policy, name, chosen)
  if (existing !== null && existing.kind === chosen && existing.cadenceDays === cadenceDays) return existing
  return tx.upsertSecret({ name, kind: chosen, cadenceDays })
}

/**
 * Records a rotation inside the caller's transaction: files the secret (kind and cadence by
 * `policy`), marks it rotated and appends the audit row. If the row cannot be written, the
 * caller's transaction fails and nothing changes.
 */
export async function recordRotationIn(tx: StoreOperations, audit: AuditLog, policy: CadencePolicy, input: RotationInput): Promise<RecordedRotation> {
  await fileSecret(tx, policy, input.secret, input.kind)
  const event = auditEvent(input)
  const notes = input.secretNotes === undefined ? {} : { notes: maskSecrets(input.secretNotes, { liveSecrets: input.liveSecrets ?? [] }) }
  const secret = await tx.markRotated({ name: input.secret, at: input.rotatedAt ?? event.at, method: input.method, ...notes })
  if (secret === null) throw new Error(`${input.secret} vanished from the inventory during its own transaction`)
  // Same transaction as the rotation: if the row cannot be appended, the rotation is not recorded either.
  const row = await tx.appendAudit(event, audit.hash)
  return { secret, seq: row.seq }
}

/** {@link recordRotationIn} in a transaction of its own. */
export async function recordRotation(store: Store, audit: AuditLog, policy: CadencePolicy, input: RotationInput): Promise<RecordedRotation> {
  await audit.refresh()
  return store.transaction((tx) => recordRotationIn(tx, audit, policy, input))
}

/**
 * Adds a secret to the inventory without a rotation (a secret rekey finds in use), with a
 * `track` audit row whose date is where its cadence starts counting. Nothing happens if it
 * is already tracked. Returns the stored secret.
 */
export function trackSecret(store: Store, audit: AuditLog, policy: CadencePolicy, input: Omit<AuditFields, 'method' | 'notes'> & { kind?: string }):
Promise<SecretRecord> {
  return store.transaction(async (tx) => {
    const existing = await tx.getSecret(input.secret)
    if (existing !== null) return existing
    const secret = await fileSecret(tx, policy, input.secret, input.kind)
    await audit.append({ ...input, method: 'track', notes: `added to the inventory (${secret.kind}, every ${secret.cadenceDays} d)` }, tx)
    return secret
  })
}

/** One line of the due report. Times are epoch ms. */
export interface DueEntry {
  readonly name: string
  readonly kind: string
  /** The cadence in force now (the policy, which may have changed since the secret was filed). */
  readonly cadenceDays: number
  readonly lastRotatedAt: number | null
  readonly lastMethod: string | null
  /** For a secret never rotated: when it was first recorded (its earliest audit row). */
  readonly firstSeenAt: number | null
  readonly dueAt: number | null
  readonly status: DueState
}

/** Every tracked secret with its due status at `now`, looking `withinMs` ahead; ordered by name. */
export async function dueReport(store: Pick<StoreOperations, 'listSecrets' | 'firstAuditAt'>, policy: CadencePolicy, now: number, withinMs: number): Promise<DueEntry[]> {
  const secrets = await store.listSecrets()
  const firstSeen = new Map<string, number>()
  // One index lookup per never-rotated secret, not the whole audit log.
  for (const s of secrets) {
    if (s.lastRotatedAt !== null) continue
    const at = await store.firstAuditAt(s.name)
    if (at !== null) firstSeen.set(s.name, at)
  }
  return secrets.map((s) => {
    const cadenceDays = cadenceDaysOf(policy, s.name, s.kind)
    const firstSeenAt = s.lastRotatedAt === null ? firstSeen.get(s.name) ?? null : null
    const verdict = dueStatus({ cadenceDays, lastRotatedAt: s.lastRotatedAt, firstSeenAt }, now, withinMs)
    return { name: s.name, kind: s.kind, cadenceDays, lastRotatedAt: s.lastRotatedAt, lastMethod: s.lastMethod, firstSeenAt, ...verdict }
  })
}
