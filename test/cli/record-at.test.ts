/**
 * `rekey record --at DATE`: the backdated rotation date is in the audit log (the row's own date
 * is when it was recorded), in text and JSON, and the chain still verifies. Real SQLite file,
 * the CLI in-process.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import path from 'node:path'
import { describe, test } from 'node:test'
import { runCli, tempDir } from './helpers.ts'

describe('rekey record --at', () => {
  test('the audit log shows the date the rotation happened, and when it was recorded', async (t) => {
    const dir = tempDir(t)
    const store = path.join(dir, 'rekey.db')
    const env = { REKEY_MASTER_KEY: randomBytes(32).toString('base64') }
    const recorded = await runCli(['--store', store, '--operator', 'alice', 'record', 'SMTP_PASSWORD', '--at', '2026-02-20', '--notes', 'ticket OPS-12'], env)
    assert.equal(recorded.code, 0, recorded.stderr)
    assert.match(recorded.stdout, /at 2026-02-20T00:00:00Z/)
    const now = await runCli(['--store', store, '--operator', 'alice', 'record', 'TWILIO_AUTH_TOKEN'], env)
    assert.equal(now.code, 0, now.stderr)

    const text = await runCli(['--store', store, 'audit'], env)
    assert.equal(text.code, 0, text.stderr)
    const smtp = text.stdout.split('\n').find((l) => l.includes('SMTP_PASSWORD')) ?? ''
    assert.match(smtp, /rotated at 2026-02-20T00:00:00Z \(recorded \d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z\); ticket OPS-12/)
    const twilio = text.stdout.split('\n').find((l) => l.includes('TWILIO_AUTH_TOKEN')) ?? ''
    assert.doesNotMatch(twilio, /rotated at/, 'a rotation recorded as it happens needs no second date')

    const json = await runCli(['--store', store, '--json', 'audit'], env)
    assert.equal(json.code, 0, json.stderr)
    assert.match(json.stdout, /rotated at 2026-02-20T00:00:00Z/)
    const verified = await runCli(['--store', store, 'audit', '--verify'], env)
    assert.equal(verified.code, 0, verified.stderr)
  })
})
