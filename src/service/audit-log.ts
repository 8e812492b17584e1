/**
 * Writing and checking the audit log from outside the service (the CLI): rows are masked
 * before they are written and chained with the service's keyed hash (`audit.ts`);
 * `core/audit-chain.ts` verifies the chain.
 */
import { maskSecrets } from '../core/mask.ts'
import type { StoreOperations } from '../store/store.ts'
import type { AuditEventInput, AuditRecord, AuditWrite, ComputeAuditHash } from '../store/types.ts'
import { auditHasher } from './audit.ts'

/** One audit event as a caller describes it (`Date | Secret | Operator | Method | Notes | Request`). */
export interface AuditFields {
  readonly secret: string
  readonly operator: string
  readonly method: string
  readonly notes: string
  readonly requestId?: string | null
  /** When it happened, epoch ms. Default `Date.now()`. */
  readonly at?: number
  /** Values to mask wherever they appear in the notes, besides what {@link maskSecrets} recognises. */
  readonly liveSecrets?: readonly string[]
}

/** The event to store: notes masked, times and request id filled in. */
export function auditEvent(fields: AuditFields): AuditEventInput {
  return {
    at: fields.at ?? Date.now(),
    secret: fields.secret,
    operator: fields.operator,
    method: fields.method,
    notes: maskSecrets(fields.notes, { liveSecrets: fields.liveSecrets ?? [] }),
    requestId: fields.requestId ?? null,
  }
}

/** The `opts.audit` of a store mutation, for a change and its audit row in one transaction. */
export function auditWriteOf(computeHash: ComputeAuditHash, fields: AuditFields): AuditWrite {
  return { event: auditEvent(fields), computeHash }
}

/**
 * Appends one masked row to the chain under `masterKey`. Pass a transaction's `tx` to append
 * it together with other changes.
 */
export function recordAudit(store: Pick<StoreOperations, 'appendAudit'>, masterKey: Uint8Array, fields: AuditFields): Promise<AuditRecord> {
  return store.appendAudit(auditEvent(fields), auditHasher(masterKey))
}
