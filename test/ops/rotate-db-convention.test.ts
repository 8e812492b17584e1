/** The alternating-users convention and the SCRAM verifier, without a database. */
import assert from 'node:assert/strict'
import { createHash, createHmac, pbkdf2Sync } from 'node:crypto'
import { describe, test } from 'node:test'
import { maskUrl, parseDatabaseUrl, planAlternation, withCredentials } from '../../src/ops/rotate-db/alternating-users.ts'
import { scramVerifier } from '../../src/ops/rotate-db/scram.ts'
import { isDbSecret } from '../../src/cli/commands/rotate-db.ts'

describe('alternating users', () => {
  test('_blue and _green take turns under the role named by the prefix', () => {
    assert.deepEqual(planAlternation('app_blue'), { currentUser: 'app_blue', nextUser: 'app_green', appRole: 'app' })
    assert.deepEqual(planAlternation('app_green'), { currentUser: 'app_green', nextUser: 'app_blue', appRole: 'app' })
  })

  test('a user without a suffix is the first run: it rotates to <user>_blue and is the application role', () => {
    assert.deepEqual(planAlternation('shop'), { currentUser: 'shop', nextUser: 'shop_blue', appRole: 'shop' })
  })

  test('--app-role overrides the role; names rekey cannot quote safely are refused', () => {
    assert.equal(planAlternation('svc_blue', 'readers').appRole, 'readers')
    assert.throws(() => planAlternation('App"; DROP'), TypeError)
    assert.throws(() => planAlternation(`${'a'.repeat(60)}_x`), /longer than 63/)
  })

  test('the new URL keeps host, port, database and parameters; the printed form masks the password', () => {
    const url = parseDatabaseUrl('postgres://app_blue:old@db.internal:6432/shop?sslmode=require&application_name=web', 'DATABASE_URL')
    const next = withCredentials(url, 'app_green', 'N3w-pass_word')
    assert.equal(next, 'postgres://app_green:N3w-pass_word@db.internal:6432/shop?sslmode=require&application_name=web')
    assert.equal(maskUrl(next), 'postgres://app_green:***@db.internal:6432/shop?sslmode=require&application_name=web')
  })

  test('URLs that are not PostgreSQL, or carry the password as a parameter, are refused without echoing them', () => {
    assert.throws(() => parseDatabaseUrl('mysql://u:secretpw@h/db', 'DATABASE_URL'), (err: Error) => err instanceof TypeError && !err.message.includes('secretpw'))
    assert.throws(() => parseDatabaseUrl('postgres://h/db?user=u&password=secretpw', 'X'), /query parameters/)
  })

  test('finalize --secret NAME goes to the database branch for names ending in _URL only', () => {
    assert.equal(isDbSecret('DATABASE_URL'), true)
    assert.equal(isDbSecret('ANALYTICS_DB_URL'), true)
    for (const name of [undefined, 'access', 'refresh', 'master-key', 'JWT_SECRET']) assert.equal(isDbSecret(name), false)
  })
})

describe('SCRAM-SHA-256 verifier', () => {
  test('has PostgreSQL\'s format and the RFC 5802 keys of the password', () => {
    const salt = Buffer.from('0123456789abcdef')
    const verifier = scramVerifier('pencil', salt, 4096)
    const salted = pbkdf2Sync('pencil', salt, 4096, 32, 'sha256')
    const stored = createHash('sha256').update(createHmac('sha256', salted).update('Client Key').digest()).digest('base64')
    const server = createHmac('sha256', salted).update('Server Key').digest('base64')
    assert.equal(verifier, `SCRAM-SHA-256$4096:${salt.toString('base64')}$${stored}:${server}`)
    assert.ok(!verifier.includes('pencil'))
    assert.notEqual(scramVerifier('pencil'), scramVerifier('pencil'), 'a fresh salt each time')
  })
})
