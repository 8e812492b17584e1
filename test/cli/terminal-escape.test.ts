import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import path from 'node:path'
import { describe, it } from 'node:test'
import { runBin, tempDir } from './helpers.ts'

/** Anything a terminal would act on: C0/C1 controls but the line feed, DEL, bidi and zero-width characters. */
const ACTIVE = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u00ad\u200b-\u200f\u2028-\u202e\u2066-\u2069\ufeff]/

function envFile(dir: string): string {
  const file = path.join(dir, '.env')
  writeFileSync(file, `JWT_SECRET=${randomBytes(32).toString('hex')}\nJWT_EXPIRATION=15m\n`)
  return file
}

describe('stored text reaches the terminal inert', () => {
  it('a carriage return in --notes cannot forge an audit row; an escape in --reason cannot clear the screen; U+202E cannot reverse a cell', async (t) => {
    const dir = tempDir(t)
    const file = envFile(dir)
    const forged = 'x\r| 2026-01-01T00:00:00Z | JWT_SECRET | alice | emergency | all clear | - |'
    const steps = [
      ['--operator', 'bob', 'record', 'SMTP_PASSWORD', '--notes', forged],
      ['--operator', 'bob', 'record', 'TWILIO_AUTH_TOKEN', '--notes', 'ticket \u202e4321-SPO\u202c \u200b\u2066x\u2069 \u00ad \u0085 \u007f \u2028'],
      ['--operator', 'bob', 'emergency', '--reason', 'leak\u001b[2J\u001b[H\u0007'],
    ]
    for (const argv of steps) {
      const r = await runBin(['--env-file', file, ...argv], { cwd: dir })
      assert.equal(r.code, 0, r.stderr)
      assert.doesNotMatch(r.stdout + r.stderr, ACTIVE, argv.join(' '))
    }
    const table = await runBin(['--env-file', file, 'audit'], { cwd: dir })
    assert.equal(table.code, 0, table.stderr)
    assert.doesNotMatch(table.stdout, ACTIVE)
    const lines = table.stdout.trimEnd().split('\n')
    assert.equal(lines.length, 2 + 3, 'header, rule, two records and the emergency row (JWT_SECRET): no forged line')
    assert.ok(lines.every((line) => line.startsWith('| ') && line.endsWith(' |')))
    assert.ok(table.stdout.includes('x\\u000d\\| 2026-01-01T00:00:00Z \\| JWT_SECRET'), 'the forged row is one visible cell')
    assert.ok(table.stdout.includes('ticket \\u202e4321-SPO\\u202c \\u200b\\u2066x\\u2069 \\u00ad \\u0085 \\u007f \\u2028'))
    assert.ok(table.stdout.includes('leak\\u001b[2J\\u001b[H\\u0007'))
    // --json keeps the stored text exactly (JSON escapes are no terminal commands).
    const json = await runBin(['--env-file', file, '--json', 'audit'], { cwd: dir })
    assert.doesNotMatch(json.stdout, ACTIVE)
    const notes = (JSON.parse(json.stdout) as { notes: string }[]).map((row) => row.notes)
    assert.ok(notes.includes(forged))
    assert.ok(notes.some((n) => n.includes('leak\u001b[2J\u001b[H\u0007')))
  })

  it('--operator with a control, format or bidi character is refused (exit 2), nothing recorded', async (t) => {
    const dir = tempDir(t)
    const file = envFile(dir)
    for (const operator of ['alice\u202e', 'alice\u001b[2J', 'al\rice', 'alice\u200b', 'alice\u0085']) {
      const r = await runBin(['--env-file', file, '--operator', operator, 'record', 'SMTP_PASSWORD'], { cwd: dir })
      assert.equal(r.code, 2, JSON.stringify(operator))
      assert.match(r.stderr, /^rekey: ERR_USAGE: --operator must not hold control, format or bidi characters/)
      assert.doesNotMatch(r.stderr, ACTIVE)
    }
    const table = await runBin(['--env-file', file, 'audit'], { cwd: dir })
    assert.match(table.stdout, /^no audit rows in /)
  })
})
