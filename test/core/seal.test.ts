import assert from 'node:assert/strict'
import { createSecretKey, randomBytes } from 'node:crypto'
import { test } from 'node:test'
import { masterKeyObject, open, seal } from '../../src/core/seal.ts'

const key = randomBytes(32)

test('seal/open round-trips, with a fresh IV each time, in the v1 text format', () => {
  const a = seal(key, 'secret material', 'kid-1')
  const b = seal(key, 'secret material', 'kid-1')
  assert.notEqual(a, b)
  assert.match(a, /^v1\.[A-Za-z0-9_-]{16}\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{22}$/)
  assert.equal(open(key, a, 'kid-1').toString(), 'secret material')
  assert.ok(!a.includes(Buffer.from('secret material').toString('base64url')))
})

test('a value does not open under another AAD (another row), another key, or when altered', () => {
  const sealed = seal(key, Buffer.from([1, 2, 3]), 'kid-1')
  assert.throws(() => open(key, sealed, 'kid-2'), { code: 'ERR_CONFIG' })
  assert.throws(() => open(randomBytes(32), sealed, 'kid-1'), { code: 'ERR_CONFIG' })
  const parts = sealed.split('.')
  const ct = Buffer.from(parts[2] ?? '', 'base64url')
  ct[0] = (ct[0] ?? 0) ^ 1
  assert.throws(() => open(key, [parts[0], parts[1], ct.toString('base64url'), parts[3]].join('.'), 'kid-1'), { code: 'ERR_CONFIG' })
  assert.throws(() => open(key, 'v2.a.b.c', 'kid-1'), { code: 'ERR_CONFIG' })
})

test('the master key must be 32 bytes', () => {
  assert.throws(() => seal(randomBytes(16), 'x', 'a'), TypeError)
})

test('the master key as a KeyObject seals and opens the same values as its bytes', () => {
  const object = masterKeyObject(key)
  assert.equal(open(key, seal(object, 'pair', 'aad-1'), 'aad-1').toString(), 'pair')
  assert.equal(open(object, seal(key, 'pair', 'aad-1'), 'aad-1').toString(), 'pair')
  assert.throws(() => open(object, seal(key, 'pair', 'aad-1'), 'aad-2'), { code: 'ERR_CONFIG' })
  assert.throws(() => masterKeyObject(randomBytes(16)), TypeError)
  assert.throws(() => seal(createSecretKey(randomBytes(16)), 'x', 'a'), TypeError)
})
