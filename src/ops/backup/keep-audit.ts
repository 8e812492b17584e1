/**
 * A restore keeps the audit log's history. The audit log is append-only: the rows the replaced
 * store wrote after the backup (a revoke, an emergency) must not vanish with it. When the
 * replaced store's chain starts with the backup's rows (same seq and hash up to the backup's
 * head), its later rows are carried into the restored store verbatim, hashes included, so the
 * chain verifies as it did. Rows from a master-key rotation on are not carried: the restored
 * store runs under the backup's master key, and a row under it cannot follow the new key's
 * anchor. When the chains diverge (another lineage) or the replaced one cannot be read, nothing
 * is carried and the `restore` row says how many rows were left and why.
 */
import { ROTATION_METHOD } from '../../service/audit/segments.ts'
import type { StoreOperations } from '../../store/store.ts'
import type { AuditRecord } from '../../store/types.ts'

/** The replaced store's audit rows, or why they could not be read. */
export type ReplacedAudit = { readonly rows: readonly AuditRecord[] } | { readonly unreadable: string }

/** What became of the replaced store's rows written after the backup. */
export interface AuditCarry {
  /** Rows carried over verbatim. */
  readonly carried: number
  /** Rows of the replaced store left out; `null` when unknown (it could not be read). */
  readonly notCarried: number | null
  /** Why rows were left out; `null` when none were. */
  readonly why: string | null
}

/** The rows to carry after the restored store's `restored` rows, and what is left out. */
export function planAuditCarry(restored: readonly AuditRecord[], replaced: ReplacedAudit | null): { rows: readonly AuditRecord[], carry: AuditCarry } {
  const none = (notCarried: number | null, why: string | null): { rows: readonly AuditRecord[], carry: AuditCarry } => ({ rows: [], carry: { carried: 0, notCarried, why } })
  if (replaced === null) return none(0, null)
  if ('unreadable' in replaced) return none(null, `the replaced store's audit log could not be read (${replaced.unreadable})`)
  const theirs = replaced.rows
  let common = 0
  while (common < restored.length && common < theirs.length && sameRow(restored[common] as AuditRecord, theirs[common] as AuditRecord)) common++
  if (common < restored.length) {
    if (common === theirs.length) return none(0, null) // the replaced store holds fewer rows of the same chain: nothing later to carry
    return none(theirs.length - common, `its chain diverges from the backup's at row ${(theirs[common] as AuditRecord).seq} (another lineage)`)
  }
  const later = theirs.slice(common)
  const rotation = later.findIndex((r) => r.method === ROTATION_METHOD)
  if (rotation < 0) return { rows: later, carry: { carried: later.length, notCarried: 0, why: null } }
  return {
    rows: later.slice(0, rotation),
    carry: { carried: rotation, notCarried: later.length - rotation, why: `a master-key rotation after the backup (row ${(later[rotation] as AuditRecord).seq}): the restored store runs under the backup's master key` },
  }
}

function sameRow(a: AuditRecord, b: AuditRecord): boolean {
  return a.seq === b.seq && a.hash === b.hash && a.prevHash === b.prevHash
}

/** Appends `rows` verbatim (their own hashes) inside the caller's transaction; each must chain onto the last. */
export async function carryAuditRows(tx: Pick<StoreOperations, 'appendAudit'>, rows: readonly AuditRecord[]): Promise<void> {
  for (const row of rows) {
    const event = { at: row.at, secret: row.secret, operator: row.operator, method: row.method, notes: row.notes, requestId: row.requestId }
    await tx.appendAudit(event, (prevHash, next) => {
      // Never a row at another place in the chain: its hash would not verify there.
      if (next.seq !== row.seq || prevHash !== row.prevHash) throw new Error(`audit row ${row.seq} does not chain onto the restored log`)
      return row.hash
    })
  }
}

/** One phrase for the warning and the `restore` row; `null` when there was nothing after the backup. */
export function describeAuditCarry(carry: AuditCarry): string | null {
  const parts: string[] = []
  if (carry.carried > 0) parts.push(`${carry.carried} audit row(s) written after the backup carried over`)
  if (carry.why !== null) parts.push(`${carry.notCarried === null ? 'an unknown number of' : carry.notCarried} audit row(s) of the replaced store not carried: ${carry.why}`)
  return parts.length === 0 ? null : parts.join('; ')
}
