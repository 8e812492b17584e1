/**
 * Verifying the audit log's hash chain. Pure: the caller reads the rows and supplies the
 * keyed hash (an HMAC under a key derived from the master key, see `service/audit/audit-hash.ts`).
 *
 * Each row's hash covers its sequence number, its content and the previous row's hash, so an
 * edited row fails its own hash, and a deleted or reordered row breaks the link or the
 * sequence of the row after it. Rows cut from the end leave a shorter chain that is still
 * valid: only a head recorded elsewhere ({@link AuditHead}) reveals that.
 */

/** What a row's hash covers. */
export interface AuditChainEntry {
  readonly seq: number
  readonly at: number
  readonly secret: string
  readonly operator: string
  readonly method: string
  readonly notes: string
  readonly requestId: string | null
}

/** A stored row: its entry, the previous row's hash (`null` for the first) and its own hash. */
export interface AuditChainRow extends AuditChainEntry {
  readonly prevHash: string | null
  readonly hash: string
}

/** The keyed hash of a row given the previous row's hash. */
export type AuditChainHash = (prevHash: string | null, entry: AuditChainEntry) => string

/** The last row of a chain, as an operator may record it outside the store. */
export interface AuditHead {
  readonly seq: number
  /** The row's hash, or a prefix of it of at least 12 hex characters. */
  readonly hash: string
}

/** The verdict of {@link verifyAuditChain}. */
export interface AuditChainReport {
  /** True when every row checks out (and the expected head, if given, is there). */
  readonly ok: boolean
  /** How many rows were checked. */
  readonly rows: number
  /** The last row, to record elsewhere as an anchor; `null` for an empty log. */
  readonly head: AuditHead | null
  /** The first row that failed and why; absent when `ok`. */
  readonly firstBad?: { readonly seq: number, readonly reason: string }
}

/** Options of {@link verifyAuditChain}. */
export interface VerifyAuditOptions {
  /** A head recorded earlier: the chain must still contain that row with that hash. */
  readonly expectHead?: AuditHead
}

/** Parses `SEQ:HASH` (as `rekey audit --verify` prints the head); `undefined` if malformed. */
export function parseAuditHead(text: string): AuditHead | undefined {
  const match = /^(\d+):([0-9a-f]{12,})$/i.exec(text.trim())
  if (match === null) return undefined
  const seq = Number(match[1])
  return Number.isSafeInteger(seq) && seq >= 1 ? { seq, hash: (match[2] as string).toLowerCase() } : undefined
}

/**
 * Walks the rows in `seq` order: sequence numbers start at 1 with no gaps, each `prevHash`
 * equals the previous row's hash, and each hash recomputes. Stops at the first bad row.
 */
export function verifyAuditChain(rows: readonly AuditChainRow[], computeHash: AuditChainHash, options: VerifyAuditOptions = {}): AuditChainReport {
  const ordered = [...rows].sort((a, b) => a.seq - b.seq)
  let prev: AuditChainRow | undefined
  for (const row of ordered) {
    const expected = prev === undefined ? 1 : prev.seq + 1
    const bad = (seq: number, reason: string): AuditChainReport => ({ ok: false, rows: ordered.length, head: headOf(ordered), firstBad: { seq, reason } })
    if (row.seq !== expected) {
      return bad(expected, prev === undefined
        ? `row 1 is missing: the log starts at row ${row.seq} (rows deleted)`
        : `row ${expected} is missing: the log jumps from row ${prev.seq} to row ${row.seq} (rows deleted)`)
    }
    const linked = prev === undefined ? null : prev.hash
    if (row.prevHash !== linked) {
      return bad(row.seq, prev === undefined
        ? 'the first row links to an earlier row (rows deleted from the start)'
        : `its prev_hash is not the hash of row ${prev.seq} (rows deleted, reordered or edited)`)
    }
    const entry: AuditChainEntry = {
      seq: row.seq, at: row.at, secret: row.secret, operator: row.operator, method: row.method, notes: row.notes, requestId: row.requestId,
    }
    if (computeHash(row.prevHash, entry) !== row.hash) {
      return bad(row.seq, 'its content does not match its hash (edited, or written under another master key)')
    }
    prev = row
  }
  const head = headOf(ordered)
  const anchor = options.expectHead
  if (anchor !== undefined) {
    if (!/^[0-9a-f]{12,}$/i.test(anchor.hash)) throw new TypeError('expectHead.hash must be at least 12 hex characters')
    const row = ordered[anchor.seq - 1]
    if (row === undefined) {
      return { ok: false, rows: ordered.length, head, firstBad: { seq: anchor.seq, reason: `row ${anchor.seq} of the recorded head is missing: rows were cut from the end` } }
    }
    if (!row.hash.startsWith(anchor.hash.toLowerCase())) {
      return { ok: false, rows: ordered.length, head, firstBad: { seq: anchor.seq, reason: `row ${anchor.seq} does not have the recorded head's hash: the log was rewritten` } }
    }
  }
  return { ok: true, rows: ordered.length, head }
}

function headOf(rows: readonly AuditChainRow[]): AuditHead | null {
  const last = rows[rows.length - 1]
  return last === undefined ? null : { seq: last.seq, hash: last.hash }
}
