import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import path from 'node:path'
import { describe, it } from 'node:test'

const ROOT = path.resolve(import.meta.dirname, '..')
const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as Record<string, unknown>

describe('package', () => {
  it('is the ESM package the contract names, with its subpaths and binary', () => {
    assert.equal(pkg.name, 'rekey')
    assert.equal(pkg.type, 'module')
    assert.deepEqual(Object.keys(pkg.exports as object).filter((k) => k !== './package.json').sort(), ['.', './crypt', './errors', './express', './fastify'])
    assert.deepEqual(pkg.bin, { rekey: 'bin/rekey.js' })
    assert.equal((pkg.engines as { node: string }).node, '>=22.12')
  })

  it('exports named bindings only, through the built files users get', async () => {
    const root = await import('rekey') as Record<string, unknown>
    const errors = await import('rekey/errors') as Record<string, unknown>
    const express = await import('rekey/express') as Record<string, unknown>
    const fastify = await import('rekey/fastify') as Record<string, unknown>
    const crypt = await import('rekey/crypt') as Record<string, unknown>
    for (const mod of [root, errors, express, fastify, crypt]) assert.equal(mod.default, undefined)
    assert.equal(typeof root.Keyring, 'function')
    assert.equal(typeof root.generateSecret, 'function')
    assert.equal(root.RekeyError, errors.RekeyError, 'one error class whichever subpath it comes from')
    assert.equal(typeof express.requireAuth, 'function')
    assert.equal(typeof fastify.rekeyAuth, 'function')
    assert.equal(typeof (crypt.Cipher as { fromEnv?: unknown }).fromEnv, 'function')
    assert.equal(crypt.RekeyError, errors.RekeyError, 'rekey/crypt throws the same error class')
  })
})
