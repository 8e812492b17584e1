/**
 * The audit chain's keyed hash. Each row's hash chains to the previous one with an HMAC keyed
 * by a key derived from the master key, so rows cannot be edited, dropped or reordered
 * without the chain breaking. Callers outside `service/audit/` use {@link AuditLog}, which
 * picks the right key across master-key segments.
 */
import { createHmac } from 'node:crypto'
import { deriveKey } from '../../core/derive-key.ts'
import type { AuditEventInput, AuditHashInput, AuditWrite, ComputeAuditHash } from '../../store/types.ts'

/** The hash function of the audit chain under `masterKey` (one segment). */
export function auditHasher(masterKey: Uint8Array): ComputeAuditHash {
  const key = deriveKey(masterKey, 'rekey/audit-chain/v1')
  return (prevHash: string | null, row: AuditHashInput): string => createHmac('sha256', key)
    .update(JSON.stringify([prevHash, row.seq, row.at, row.secret, row.operator, row.method, row.notes, row.requestId]))
    .digest('hex')
}

/** An audit row for `opts.audit` of a store mutation. */
export function auditWrite(computeHash: ComputeAuditHash, event: AuditEventInput): AuditWrite {
  return { event, computeHash }
}
