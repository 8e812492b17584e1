import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import path from 'node:path'
import { describe, it } from 'node:test'
import { runBin, tempDir } from './helpers.ts'

/**
 * Anything a terminal would act on: C0/C1 controls but the line feed and tab, DEL, bidi and
 * zero-width characters but the joiner and non-joiner (text needs them), astral format characters.
 */
const ACTIVE = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u00ad\u200b\u200e\u200f\u2028-\u202e\u2066-\u2069\ufeff]|\u{e0001}|[\u{e0020}-\u{e007f}]/u

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

  it('--json stays valid JSON with astral format characters (tag characters of a flag emoji); joiners and tabs are text', async (t) => {
    const dir = tempDir(t)
    const file = envFile(dir)
    const flag = 'leak \u{1f3f4}\u{e0067}\u{e0062}\u{e0073}\u{e0063}\u{e0074}\u{e007f}'
    const coder = 'by \u{1f469}\u200d\u{1f4bb}\tmy\u200cname'
    assert.equal((await runBin(['--env-file', file, 'emergency', '--reason', flag], { cwd: dir })).code, 0)
    assert.equal((await runBin(['--env-file', file, 'record', 'SMTP_PASSWORD', '--notes', coder], { cwd: dir })).code, 0)
    const json = await runBin(['--env-file', file, '--json', 'audit'], { cwd: dir })
    assert.equal(json.code, 0, json.stderr)
    assert.doesNotMatch(json.stdout, ACTIVE)
    const notes = (JSON.parse(json.stdout) as { notes: string }[]).map((row) => row.notes)
    assert.ok(notes.some((n) => n.includes(flag)), 'the stored reason, exactly')
    assert.ok(notes.includes(coder))
    const table = await runBin(['--env-file', file, 'audit'], { cwd: dir })
    assert.doesNotMatch(table.stdout, ACTIVE)
    assert.ok(table.stdout.includes('\\udb40\\udc67'), 'an astral code as a surrogate pair')
    assert.ok(table.stdout.includes('\u{1f469}\u200d\u{1f4bb}') && table.stdout.includes('my\u200cname'), 'joiners pass')
    const bad = await runBin(['--json', '--store', path.join(dir, 'x\u{e0041}.db'), 'status'], { cwd: dir })
    assert.notEqual(bad.code, 0)
    assert.doesNotThrow(() => JSON.parse(bad.stderr), 'the error object is valid JSON')
  })
})
