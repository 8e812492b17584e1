/**
 * The error catalog and its documentation agree; RekeyError carries code, status and
 * details; generateSecret gives the strength it promises.
 */
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { describe, it } from 'node:test'
import { ERRORS, generateSecret, isRekeyError, Keyring, MIN_SECRET_BYTES, RekeyError } from '../../src/index.ts'
import * as errorsEntry from '../../src/core/errors.ts'

const DOC = readFileSync(new URL('../../docs/errors.md', import.meta.url), 'utf8')

/** Rows of the markdown table whose first cell is a code: `| \`ERR_X\` | 401 | meaning |`. */
function documentedCodes(markdown: string): Array<{ code: string, status: number, meaning: string }> {
  // Only the catalog's own table (the first one); the CLI's codes have a table of their own.
  const lines = markdown.split('\n')
  const start = lines.findIndex((l) => l.trim() === '| code | HTTP status | meaning |')
  const end = lines.findIndex((l, i) => i > start + 1 && !l.startsWith('|'))
  return lines.slice(start, end)
    .filter((line) => /^\|\s*`ERR_/.test(line))
    .map((line) => {
      const cells = line.split('|').slice(1, -1).map((c) => c.trim())
      return { code: (cells[0] ?? '').replaceAll('`', ''), status: Number(cells[1]), meaning: cells.slice(2).join('|') }
    })
}

// Section 2.2 of the contract: these codes exist, whatever is added later.
const CONTRACT_CODES = [
  'ERR_TOKEN_MALFORMED', 'ERR_TOKEN_SIGNATURE', 'ERR_TOKEN_EXPIRED', 'ERR_TOKEN_NOT_YET_VALID',
  'ERR_TOKEN_CLAIM', 'ERR_TOKEN_ALG', 'ERR_TOKEN_REVOKED', 'ERR_KEY_UNKNOWN', 'ERR_KEY_RETIRED',
  'ERR_KEY_REVOKED', 'ERR_WEAK_SECRET', 'ERR_CONFIG', 'ERR_CONFLICT', 'ERR_UNSAFE', 'ERR_STORE_UNAVAILABLE',
]

describe('docs/errors.md mirrors the catalog', () => {
  const rows = documentedCodes(DOC)

  it('the table parses', () => {
    assert.ok(rows.length >= CONTRACT_CODES.length, `found ${rows.length} rows`)
    assert.equal(new Set(rows.map((r) => r.code)).size, rows.length, 'no code is documented twice')
  })

  it('every code of ERRORS is documented', () => {
    const documented = new Set(rows.map((r) => r.code))
    const missing = Object.keys(ERRORS).filter((code) => !documented.has(code))
    assert.deepEqual(missing, [], `missing from docs/errors.md: ${missing.join(', ')}`)
  })

  it('the docs name no code that does not exist', () => {
    const unknown = rows.map((r) => r.code).filter((code) => !Object.hasOwn(ERRORS, code))
    assert.deepEqual(unknown, [], `not in ERRORS: ${unknown.join(', ')}`)
  })

  it('statuses and meanings agree', () => {
    for (const { code, status, meaning } of rows) {
      const spec = ERRORS[code as keyof typeof ERRORS]
      if (spec === undefined) continue // reported by the test above
      assert.equal(status, spec.status, `${code} status`)
      assert.equal(meaning, spec.meaning, `${code} meaning`)
    }
  })

  it('every code of the contract exists, and only HTTP error statuses are used', () => {
    for (const code of CONTRACT_CODES) assert.ok(Object.hasOwn(ERRORS, code), code)
    for (const [code, spec] of Object.entries(ERRORS)) {
      assert.match(code, /^ERR_[A-Z_]+$/)
      assert.ok(spec.status >= 400 && spec.status <= 599, code)
    }
  })

  it('the catalog cannot be changed at run time', () => {
    assert.ok(Object.isFrozen(ERRORS))
    assert.throws(() => { (ERRORS as Record<string, unknown>).ERR_NEW = { status: 200, meaning: '' } }, TypeError)
  })

  it('rekey/errors exports the same catalog and class', () => {
    assert.equal(errorsEntry.ERRORS, ERRORS)
    assert.equal(errorsEntry.RekeyError, RekeyError)
  })
})

describe('RekeyError', () => {
  it('carries name, code, status, claim and problems', () => {
    const err = new RekeyError('ERR_TOKEN_CLAIM', 'Unexpected "aud" claim value', { claim: 'aud' })
    assert.ok(err instanceof Error)
    assert.equal(err.name, 'RekeyError')
    assert.equal(err.code, 'ERR_TOKEN_CLAIM')
    assert.equal(err.status, 401)
    assert.equal(err.claim, 'aud')
    assert.deepEqual(err.problems, [])
    assert.equal(String(err), 'RekeyError: Unexpected "aud" claim value')
  })

  it('answers the JSON body { error, message }', () => {
    const err = new RekeyError('ERR_STORE_UNAVAILABLE', 'The store did not answer')
    assert.equal(JSON.stringify(err), '{"error":"ERR_STORE_UNAVAILABLE","message":"The store did not answer"}')
    assert.equal(err.status, 503)
  })

  it('freezes its problems and keeps a cause', () => {
    const list = ['a', 'b']
    const cause = new Error('socket hang up')
    const err = new RekeyError('ERR_CONFIG', 'Invalid', { problems: list, cause })
    list.push('c')
    assert.deepEqual(err.problems, ['a', 'b'])
    assert.ok(Object.isFrozen(err.problems))
    assert.equal(err.cause, cause)
  })

  it('isRekeyError recognises copies from another instance of the package', () => {
    assert.ok(isRekeyError(new RekeyError('ERR_CONFLICT', 'x')))
    const foreign = Object.assign(new Error('x'), { name: 'RekeyError', code: 'ERR_CONFLICT' })
    assert.ok(isRekeyError(foreign))
    assert.ok(!isRekeyError(new Error('x')))
    assert.ok(!isRekeyError(Object.assign(new Error('x'), { name: 'RekeyError' })))
    assert.ok(!isRekeyError({ name: 'RekeyError', code: 'ERR_CONFLICT' }))
  })
})

describe('generateSecret', () => {
  it('defaults to 32 random bytes as hex', () => {
    const secret = generateSecret()
    assert.match(secret, /^[0-9a-f]{64}$/)
  })

  it('gives exactly the bytes asked for, 32 to 64, in each encoding', () => {
    const alphabet = { hex: /^[0-9a-f]+$/, base64: /^[A-Za-z0-9+/]+={0,2}$/, base64url: /^[A-Za-z0-9_-]+$/ } as const
    for (let bytes = 32; bytes <= 64; bytes++) {
      for (const encoding of ['hex', 'base64', 'base64url'] as const) {
        const secret = generateSecret({ bytes, encoding })
        assert.match(secret, alphabet[encoding])
        assert.equal(Buffer.from(secret, encoding).length, bytes, `${bytes} ${encoding}`)
        assert.equal(Buffer.from(secret, encoding).toString(encoding), secret, 'canonical encoding')
      }
    }
  })

  it('is always strong enough for the keyring', () => {
    for (const encoding of ['hex', 'base64', 'base64url'] as const) {
      const secret = generateSecret({ encoding })
      assert.ok(Buffer.byteLength(secret) >= MIN_SECRET_BYTES)
      assert.ok(Keyring.fromEnv({ JWT_SECRET: secret }))
    }
  })

  it('refuses other sizes and encodings with a RangeError', () => {
    for (const bytes of [31, 65, 0, -32, 32.5, Number.NaN, Number.POSITIVE_INFINITY, '32' as unknown as number, 16]) {
      assert.throws(() => generateSecret({ bytes }), { name: 'RangeError', message: 'bytes must be an integer from 32 to 64' }, String(bytes))
    }
    for (const encoding of ['utf8', 'binary', 'HEX', ''] as const) {
      assert.throws(() => generateSecret({ encoding: encoding as 'hex' }), { name: 'RangeError', message: 'encoding must be one of hex, base64, base64url' }, encoding)
    }
  })

  it('never repeats', () => {
    const seen = new Set(Array.from({ length: 2000 }, () => generateSecret()))
    assert.equal(seen.size, 2000)
    // Every hex digit turns up as the first one over many draws: no stuck leading bits.
    const firstDigits = new Set([...seen].map((s) => s[0]))
    assert.equal(firstDigits.size, 16)
  })
})
