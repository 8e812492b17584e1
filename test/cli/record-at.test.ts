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

  test('a day the month does not have is refused, not rolled over into the next month; nothing is recorded', async (t) => {
    const dir = tempDir(t)
    const store = path.join(dir, 'rekey.db')
    const env = { REKEY_MASTER_KEY: randomBytes(32).toString('base64') }
    for (const at of ['2026-02-30', '2026-04-31T10:00:00Z', '2025-02-29']) {
      const r = await runCli(['--store', store, 'record', 'SMTP_PASSWORD', '--at', at], env)
      assert.equal(r.code, 2, `${at}: ${r.stdout}`)
      assert.match(r.stderr, /^rekey: ERR_USAGE: .*--at.*must be an ISO 8601 date/, at)
      const since = await runCli(['--store', store, 'audit', '--since', at], env)
      assert.equal(since.code, 2, `audit --since ${at}`)
    }
    const leap = await runCli(['--store', store, 'record', 'SMTP_PASSWORD', '--at', '2024-02-29'], env)
    assert.equal(leap.code, 0, leap.stderr)
    assert.match(leap.stdout, /at 2024-02-29T00:00:00Z/)
    const audit = await runCli(['--store', store, '--json', 'audit'], env)
    assert.equal((JSON.parse(audit.stdout) as unknown[]).length, 1, 'only the valid date was recorded')
  })
})
