/**
 * The audit chain across master-key rotations. The chain's HMAC key is derived from the
 * master key, so a master-key rotation splits the log into segments:
 *
 * - the rotation row (`master-key-rotate`) is the last row hashed under the OLD key;
 * - the next row, the anchor (`master-key-anchor`), is hashed under the NEW key, links to the
 *   rotation row's hash like any row, and records the SHA-256 digest of every row before it.
 *
 * So the newest key alone vouches for the whole log: rows of its own segment by their HMAC,
 * every earlier row through the digest its anchor recorded. With an older key at hand as well,
 * the rows of that key's segment are also checked one by one (naming the first bad row).
 */
import { createHash, createHmac } from 'node:crypto'
import { deriveKey } from '../../core/derive-key.ts'
import { verifyAuditChain, type AuditChainReport, type AuditChainRow, type VerifyAuditOptions } from '../../core/audit-chain.ts'
import type { AuditHashInput, ComputeAuditHash } from '../../store/types.ts'
import { auditHasher } from './audit-hash.ts'

/** The method of the last row hashed under the old master key. */
export const ROTATION_METHOD = 'master-key-rotate'
/** The method of the first row hashed under the new master key. */
export const ANCHOR_METHOD = 'master-key-anchor'

/** A public id of a master key (16 hex), safe to log and store: it reveals nothing of the key. */
export function masterKeyId(masterKey: Uint8Array): string {
  const key = deriveKey(masterKey, 'rekey/master-key-id/v1')
  return createHmac('sha256', key).update('rekey master key id').digest('hex').slice(0, 16)
}

/** SHA-256 over rows (content, links and hashes), in order: what an anchor records. */
export function rowsDigest(rows: readonly AuditChainRow[]): string {
  const hash = createHash('sha256')
  for (const r of rows) hash.update(`${JSON.stringify([r.seq, r.at, r.secret, r.operator, r.method, r.notes, r.requestId, r.prevHash, r.hash])}\n`)
  return hash.digest('hex')
}

/** What an anchor row's notes say. */
export interface Anchor {
  readonly newKeyId: string
  readonly previousKeyId: string
  /** The anchor covers rows 1..coveredSeq. */
  readonly coveredSeq: number
  readonly digest: string
}

/** The notes of an anchor row. */
export function anchorNotes(anchor: Anchor, previousHead: string): string {
  return `the chain continues under master key k:${anchor.newKeyId}; rows 1..${anchor.coveredSeq} (previous key k:${anchor.previousKeyId}) `
    + `have digest sha256:${anchor.digest}; previous head ${anchor.coveredSeq}:${previousHead}`
}

const ANCHOR = /under master key k:([0-9a-f]{16}); rows 1\.\.(\d+) \(previous key k:([0-9a-f]{16})\) have digest sha256:([0-9a-f]{64})/

/** Parses an anchor row's notes; `undefined` if they are not an anchor's. */
export function parseAnchor(notes: string): Anchor | undefined {
  const m = ANCHOR.exec(notes)
  if (m === null) return undefined
  return { newKeyId: m[1] as string, coveredSeq: Number(m[2]), previousKeyId: m[3] as string, digest: m[4] as string }
}

function bad(rows: readonly AuditChainRow[], seq: number, reason: string): AuditChainReport {
  const last = rows[rows.length - 1]
  return { ok: false, rows: rows.length, head: last === undefined ? null : { seq: last.seq, hash: last.hash }, firstBad: { seq, reason } }
}

/**
 * Verifies the audit log with the master keys at hand (the current one first, then
 * REKEY_MASTER_KEY_PREV if set). A log without anchors is one segment, checked with whichever
 * key verifies it. With anchors, the newest segment's key must be given.
 */
export function verifyAuditLog(rows: readonly AuditChainRow[], masterKeys: readonly Uint8Array[], options: VerifyAuditOptions = {}): AuditChainReport {
  if (masterKeys.length === 0) throw new TypeError('at least one master key is needed')
  const ordered = [...rows].sort((a, b) => a.seq - b.seq)
  const hashers = new Map<string, ComputeAuditHash>(masterKeys.map((k) => [masterKeyId(k), auditHasher(k)]))
  const anchors: Array<{ row: AuditChainRow, anchor: Anchor }> = []
  for (const row of ordered) {
    if (row.method !== ANCHOR_METHOD) continue
    const anchor = parseAnchor(row.notes)
    if (anchor === undefined) return bad(ordered, row.seq, 'an anchor row whose notes do not name its master key and digest (edited)')
    anchors.push({ row, anchor })
  }
  if (anchors.length === 0) {
    const reports = [...hashers.values()].map((h) => verifyAuditChain(ordered, h, options))
    return reports.find((r) => r.ok) ?? (reports[0] as AuditChainReport)
  }
  const newest = anchors[anchors.length - 1] as { row: AuditChainRow, anchor: Anchor }
  if (!hashers.has(newest.anchor.newKeyId)) {
    return bad(ordered, newest.row.seq, `rows from ${newest.row.seq} on are chained under master key k:${newest.anchor.newKeyId}, which was not given (set it as REKEY_MASTER_KEY)`)
  }
  const first = anchors[0] as { row: AuditChainRow, anchor: Anchor }
  const keyIdOf = (seq: number): string => {
    let id = first.anchor.previousKeyId
    for (const a of anchors) if (seq >= a.row.seq) id = a.anchor.newKeyId
    return id
  }
  const stored = new Map(ordered.map((r) => [r.seq, r.hash]))
  // A row whose key is not at hand passes here; the digest of a later anchor vouches for it below.
  const hash = (prevHash: string | null, entry: AuditHashInput): string => {
    const h = hashers.get(keyIdOf(entry.seq))
    return h === undefined ? stored.get(entry.seq) ?? '' : h(prevHash, entry)
  }
  const walked = verifyAuditChain(ordered, hash, options)
  if (!walked.ok) return walked
  for (const { row, anchor } of anchors) {
    if (!hashers.has(anchor.newKeyId)) continue
    const covered = ordered.slice(0, row.seq - 1)
    if (anchor.coveredSeq !== row.seq - 1 || rowsDigest(covered) !== anchor.digest) {
      return bad(ordered, row.seq, `rows 1..${row.seq - 1} do not match the digest anchor row ${row.seq} recorded: an earlier row was edited (set REKEY_MASTER_KEY_PREV too to name it)`)
    }
  }
  return walked
}
