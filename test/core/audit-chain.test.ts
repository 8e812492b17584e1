import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { describe, it } from 'node:test'
import { parseAuditHead, verifyAuditChain, type AuditChainRow } from '../../src/core/audit-chain.ts'
import { auditHasher } from '../../src/service/audit/audit-hash.ts'

const KEY = randomBytes(32)
const hash = auditHasher(KEY)

/** A chain of `n` rows as the store would write it. */
function chain(n: number): AuditChainRow[] {
  const rows: AuditChainRow[] = []
  for (let seq = 1; seq <= n; seq++) {
    const entry = { seq, at: Date.UTC(2026, 2, seq), secret: 'JWT_SECRET', operator: 'alice', method: 'rotate', notes: `rotation ${seq}`, requestId: null }
    const prevHash = rows[seq - 2]?.hash ?? null
    rows.push({ ...entry, prevHash, hash: hash(prevHash, entry) })
  }
  return rows
}

const at = (rows: AuditChainRow[], seq: number): AuditChainRow => rows[seq - 1] as AuditChainRow

describe('verifyAuditChain', () => {
  it('accepts an intact chain, an empty one, and rows given out of order', () => {
    const rows = chain(5)
    assert.deepEqual(verifyAuditChain(rows, hash), { ok: true, rows: 5, head: { seq: 5, hash: at(rows, 5).hash } })
    assert.deepEqual(verifyAuditChain([], hash), { ok: true, rows: 0, head: null })
    assert.equal(verifyAuditChain([...rows].reverse(), hash).ok, true)
  })

  it('names an edited row', () => {
    const rows = chain(5)
    rows[2] = { ...at(rows, 3), notes: 'nothing to see here' }
    const report = verifyAuditChain(rows, hash)
    assert.equal(report.ok, false)
    assert.equal(report.firstBad?.seq, 3)
    assert.match(report.firstBad?.reason ?? '', /content does not match its hash/)
  })

  it('names a row deleted from the middle or the start', () => {
    const rows = chain(5)
    const middle = verifyAuditChain(rows.filter((r) => r.seq !== 3), hash)
    assert.deepEqual(middle.firstBad, { seq: 3, reason: 'row 3 is missing: the log jumps from row 2 to row 4 (rows deleted)' })
    assert.equal(verifyAuditChain(rows.slice(1), hash).firstBad?.seq, 1)
  })

  it('names the first of two reordered rows', () => {
    const rows = chain(5)
    // Swap the sequence numbers of rows 2 and 3, as an UPDATE would.
    const swapped = rows.map((r) => (r.seq === 2 ? { ...r, seq: 3 } : r.seq === 3 ? { ...r, seq: 2 } : r))
    const report = verifyAuditChain(swapped, hash)
    assert.equal(report.firstBad?.seq, 2)
    assert.match(report.firstBad?.reason ?? '', /prev_hash is not the hash of row 1/)
  })

  it('catches a row re-linked after a deletion, and a chain under another key', () => {
    const rows = chain(4)
    // Delete row 2 and renumber: the link of the new row 2 no longer matches.
    const renumbered = rows.filter((r) => r.seq !== 2).map((r) => (r.seq > 2 ? { ...r, seq: r.seq - 1 } : r))
    assert.equal(verifyAuditChain(renumbered, hash).firstBad?.seq, 2)
    const other = auditHasher(randomBytes(32))
    assert.deepEqual(verifyAuditChain(rows, other).firstBad?.seq, 1)
  })

  it('detects rows cut from the end only against a recorded head', () => {
    const rows = chain(5)
    const head = { seq: 5, hash: at(rows, 5).hash.slice(0, 16) }
    const cut = rows.slice(0, 3)
    assert.equal(verifyAuditChain(cut, hash).ok, true, 'without an anchor the shorter chain is valid')
    const report = verifyAuditChain(cut, hash, { expectHead: head })
    assert.deepEqual(report.firstBad, { seq: 5, reason: 'row 5 of the recorded head is missing: rows were cut from the end' })
    assert.equal(verifyAuditChain(rows, hash, { expectHead: head }).ok, true)
    assert.equal(verifyAuditChain(chain(6), hash, { expectHead: head }).ok, true, 'rows appended after the head are fine')
  })

  it('parses SEQ:HASH heads', () => {
    assert.deepEqual(parseAuditHead('42:ABCDEF0123456789'), { seq: 42, hash: 'abcdef0123456789' })
    for (const bad of ['42', '0:abcdef012345', '42:abc', 'x:abcdef012345', '42:zzzzzzzzzzzz']) assert.equal(parseAuditHead(bad), undefined, bad)
  })
})
