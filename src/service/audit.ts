/**
 * Audit rows written by the service. Each row's hash chains to the previous one with an HMAC
 * keyed by a key derived from the master key, so rows cannot be edited, dropped or reordered
 * without the chain breaking.
 */
import { createHmac, hkdfSync } from 'node:crypto'
import type { AuditEventInput, AuditHashInput, AuditWrite, ComputeAuditHash } from '../store/types.ts'

/** The hash function of the audit chain under `masterKey`. */
export function auditHasher(masterKey: Uint8Array): ComputeAuditHash {
  const key = Buffer.from(hkdfSync('sha256', masterKey, Buffer.alloc(0), 'rekey/audit-chain/v1', 32))
  return (prevHash: string | null, row: AuditHashInput): string => createHmac('sha256', key)
    .update(JSON.stringify([prevHash, row.seq, row.at, row.secret, row.operator, row.method, row.notes, row.requestId]))
    .digest('hex')
}

/** An audit row for `opts.audit` of a store mutation. */
export function auditWrite(computeHash: ComputeAuditHash, event: AuditEventInput): AuditWrite {
  return { event, computeHash }
}
