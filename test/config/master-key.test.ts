/**
 * The master key's written forms: base64, base64url and the 64 hex digits `rekey gen` prints by
 * default, all for the same 32 bytes; anything else is refused without repeating the value.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { test } from 'node:test'
import { decodeMasterKey } from '../../src/config/master-key.ts'

const BIN = path.resolve(import.meta.dirname, '../../bin/rekey.js')

test('32 bytes read the same as base64, base64url and 64 hex digits', () => {
  const bytes = randomBytes(32)
  for (const text of [bytes.toString('base64'), bytes.toString('base64url'), bytes.toString('hex'), bytes.toString('hex').toUpperCase(), ` ${bytes.toString('hex')}\n`]) {
    assert.deepEqual(decodeMasterKey(text), bytes)
  }
})

test('other lengths and alphabets are refused, and the message never repeats the value', () => {
  for (const text of [randomBytes(24).toString('hex'), randomBytes(48).toString('base64'), `${randomBytes(32).toString('hex')}0`, 'not a key!']) {
    assert.throws(() => decodeMasterKey(text), (err: Error) => err instanceof RangeError && !err.message.includes(text.trim()))
  }
})

test('REKEY_MASTER_KEY=$(rekey gen) keys a new store and verifies its audit chain', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'rekey-master-hex-'))
  try {
    const gen = spawnSync(process.execPath, [BIN, 'gen'], { encoding: 'utf8' })
    assert.equal(gen.status, 0, gen.stderr)
    const key = gen.stdout.trim()
    assert.match(key, /^[0-9a-f]{64}$/)
    const env = { ...process.env, REKEY_MASTER_KEY: key, REKEY_STORE: path.join(dir, 'rekey.db'), ADMIN_PASSWORD: 'correct-horse-battery-staple', REKEY_ARGON2_MEMORY_KIB: '64', REKEY_ARGON2_TIME_COST: '1' }
    const rotate = spawnSync(process.execPath, [BIN, 'admin', 'create', '--email', 'ops@example.com', '--password-env', 'ADMIN_PASSWORD'], { encoding: 'utf8', env })
    assert.equal(rotate.status, 0, rotate.stderr)
    const verify = spawnSync(process.execPath, [BIN, 'audit', '--verify'], { encoding: 'utf8', env })
    assert.equal(verify.status, 0, verify.stderr)
    assert.ok(!`${rotate.stdout}${rotate.stderr}${verify.stdout}${verify.stderr}`.includes(key), 'the key is never printed')
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})
