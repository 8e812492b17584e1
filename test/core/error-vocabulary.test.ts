/**
 * Every error vocabulary rekey answers with lives in one table in code and is documented in
 * docs/errors.md: the RekeyError catalog (`ERRORS`), the CLI's own `--json` codes
 * (`CLI_ERRORS`, including the backup error) and the HTTP service's codes (`SERVICE_ERRORS`).
 * A code missing from the docs, or documented but gone, fails here.
 */
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { describe, it } from 'node:test'
import { CLI_ERRORS, ERRORS } from '../../src/core/errors.ts'
import { BackupError } from '../../src/ops/backup/backup-error.ts'
import { SERVICE_ERRORS } from '../../src/service/errors.ts'

const DOC = readFileSync(new URL('../../docs/errors.md', import.meta.url), 'utf8')

/** The rows of the markdown table whose header line is `header`, as cells without backticks. */
export function markdownTable(markdown: string, header: string): string[][] {
  const lines = markdown.split('\n')
  const start = lines.findIndex((l) => l.trim() === header)
  assert.ok(start >= 0, `no table "${header}" in docs/errors.md`)
  const rows: string[][] = []
  for (const line of lines.slice(start + 2)) {
    if (!line.startsWith('|')) break
    rows.push(line.split('|').slice(1, -1).map((c) => c.trim().replaceAll('`', '')))
  }
  return rows
}

function sameCodes(documented: readonly string[], table: object, name: string): void {
  assert.equal(new Set(documented).size, documented.length, `${name}: no code documented twice`)
  const missing = Object.keys(table).filter((c) => !documented.includes(c))
  const unknown = documented.filter((c) => !Object.hasOwn(table, c))
  assert.deepEqual(missing, [], `${name}: missing from docs/errors.md`)
  assert.deepEqual(unknown, [], `${name}: documented but not in the code`)
}

describe('docs/errors.md documents every error vocabulary', () => {
  it('the RekeyError catalog', () => {
    const rows = markdownTable(DOC, '| code | HTTP status | meaning |')
    sameCodes(rows.map((r) => r[0] as string), ERRORS, 'ERRORS')
  })

  it('the CLI codes, with their exit codes and meanings', () => {
    const rows = markdownTable(DOC, '| code | exit | meaning |')
    sameCodes(rows.map((r) => r[0] as string), CLI_ERRORS, 'CLI_ERRORS')
    for (const [code, exit, meaning] of rows) {
      const spec = CLI_ERRORS[code as keyof typeof CLI_ERRORS]
      assert.equal(Number(exit), spec.exit, `${code} exit`)
      assert.equal(meaning, spec.meaning.replaceAll('`', ''), `${code} meaning`)
    }
  })

  it('the HTTP service codes, with their statuses and messages', () => {
    const rows = markdownTable(DOC, '| code | HTTP status | message |')
    sameCodes(rows.map((r) => r[0] as string), SERVICE_ERRORS, 'SERVICE_ERRORS')
    for (const [code, status, message] of rows) {
      const spec = SERVICE_ERRORS[code as keyof typeof SERVICE_ERRORS]
      assert.equal(Number(status), spec.status, `${code} status`)
      assert.equal(message, spec.message, `${code} message`)
    }
  })

  it('no code is in two vocabularies, and the backup error uses its catalog code', () => {
    const all = [...Object.keys(ERRORS), ...Object.keys(CLI_ERRORS), ...Object.keys(SERVICE_ERRORS)]
    assert.equal(new Set(all).size, all.length)
    assert.ok(Object.hasOwn(CLI_ERRORS, new BackupError('x').code))
    assert.ok(Object.isFrozen(CLI_ERRORS))
  })
})
