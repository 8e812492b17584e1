/**
 * rekey/crypt: the format, the keys that decrypt and those refused by name, associated data,
 * tampering, configuration errors, the nonce-bound counters, and no key in any output.
 * The oracle for the format is bare node:crypto, not the cipher itself.
 */
import assert from 'node:assert/strict'
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto'
import { inspect } from 'node:util'
import { describe, it } from 'node:test'
import { Cipher, RekeyError } from '../../src/crypt.ts'
import { kidOfText } from '../../src/core/data-keys.ts'

const KEY = randomBytes(32).toString('hex')
const OLD = randomBytes(32).toString('hex')

const code = (fn: () => unknown): string => {
  try {
    fn()
  } catch (err) {
    assert.ok(err instanceof RekeyError, `a RekeyError, not ${String(err)}`)
    return err.code
  }
  assert.fail('did not throw')
}

describe('Cipher.fromEnv', () => {
  it('encrypts to rk1.<kid>.<nonce>.<ciphertext+tag> that bare AES-256-GCM decrypts', () => {
    const cipher = Cipher.fromEnv({ ENCRYPTION_KEY: KEY })
    const text = cipher.encrypt('4111 1111 1111 1111', { aad: 'cards:42' })
    const [version, kid, nonce, body, ...rest] = text.split('.')
    assert.equal(version, 'rk1')
    assert.equal(kid, kidOfText(KEY))
    assert.equal(kid, cipher.currentKid)
    assert.equal(rest.length, 0)
    const n = Buffer.from(nonce as string, 'base64url')
    const b = Buffer.from(body as string, 'base64url')
    assert.equal(n.length, 12)
    const gcm = createDecipheriv('aes-256-gcm', Buffer.from(KEY, 'hex'), n)
    gcm.setAAD(Buffer.from('cards:42'))
    gcm.setAuthTag(b.subarray(b.length - 16))
    assert.equal(Buffer.concat([gcm.update(b.subarray(0, b.length - 16)), gcm.final()]).toString(), '4111 1111 1111 1111')
  })

  it('decrypts what bare node:crypto encrypted in the documented format', () => {
    const nonce = randomBytes(12)
    const gcm = createCipheriv('aes-256-gcm', Buffer.from(KEY, 'hex'), nonce)
    const body = Buffer.concat([gcm.update('hello'), gcm.final(), gcm.getAuthTag()])
    const text = `rk1.${kidOfText(KEY)}.${nonce.toString('base64url')}.${body.toString('base64url')}`
    assert.equal(Cipher.fromEnv({ ENCRYPTION_KEY: KEY }).decrypt(text).toString(), 'hello')
  })

  it('uses a fresh nonce for every value, and takes bytes as well as text', () => {
    const cipher = Cipher.fromEnv({ ENCRYPTION_KEY: KEY })
    const nonces = new Set(Array.from({ length: 2000 }, () => cipher.encrypt('same').split('.')[2]))
    assert.equal(nonces.size, 2000)
    const bytes = randomBytes(300)
    assert.deepEqual(cipher.decrypt(cipher.encrypt(bytes)), bytes)
    assert.equal(cipher.decrypt(cipher.encrypt('')).length, 0)
  })

  it('ENCRYPTION_KEY_PREV decrypts until finalize; new values use ENCRYPTION_KEY', () => {
    const before = Cipher.fromEnv({ ENCRYPTION_KEY: OLD })
    const old = before.encrypt('v', { aad: 'a' })
    const during = Cipher.fromEnv({ ENCRYPTION_KEY: KEY, ENCRYPTION_KEY_PREV: OLD })
    assert.equal(during.decrypt(old, { aad: 'a' }).toString(), 'v')
    assert.equal(during.needsRewrap(old), true)
    const rewrapped = during.rewrap(old, { aad: 'a' })
    assert.equal(Cipher.kidOf(rewrapped), kidOfText(KEY))
    assert.equal(during.needsRewrap(rewrapped), false)
    const after = Cipher.fromEnv({ ENCRYPTION_KEY: KEY })
    assert.equal(code(() => after.decrypt(old, { aad: 'a' })), 'ERR_KEY_UNKNOWN')
    assert.equal(after.decrypt(rewrapped, { aad: 'a' }).toString(), 'v')
  })

  it('refuses another row, a tampered value and malformed text with their codes', () => {
    const cipher = Cipher.fromEnv({ ENCRYPTION_KEY: KEY })
    const text = cipher.encrypt('secret', { aad: 'users:1' })
    assert.equal(code(() => cipher.decrypt(text, { aad: 'users:2' })), 'ERR_CIPHERTEXT_AUTH')
    assert.equal(code(() => cipher.decrypt(text)), 'ERR_CIPHERTEXT_AUTH')
    const last = text.at(-3) === 'A' ? 'B' : 'A'
    assert.equal(code(() => cipher.decrypt(`${text.slice(0, -3)}${last}${text.slice(-2)}`, { aad: 'users:1' })), 'ERR_CIPHERTEXT_AUTH')
    for (const bad of ['', 'secret', 'rk1.', 'rk1..AAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAA', `${text.split('.').slice(0, 3).join('.')}.AAAA`,
      text.replace('rk1.', 'rk2.'), `${text.slice(0, -1)}!`, text.split('.').slice(0, 3).join('.'),
      text.replace(cipher.currentKid, 'bad\nkid'), text.replace(cipher.currentKid, 'k'.repeat(65))]) {
      assert.equal(code(() => cipher.decrypt(bad)), 'ERR_CIPHERTEXT_MALFORMED', JSON.stringify(bad))
    }
    assert.throws(() => cipher.decrypt(42 as unknown as string), TypeError)
    assert.throws(() => cipher.encrypt({} as unknown as string), TypeError)
  })

  it('reads the JWK list form: states decide who encrypts, and retired or revoked keys are refused by name', () => {
    const k = (b: Buffer): string => b.toString('base64url')
    const [a, b, c, d] = [randomBytes(32), randomBytes(32), randomBytes(32), randomBytes(32)]
    const env = (states: string[]): Record<string, string> => ({
      ENCRYPTION_KEYS: JSON.stringify({ keys: [a, b, c, d].map((key, i) => ({ kty: 'oct', alg: 'A256GCM', kid: `k${i}`, k: k(key), status: states[i] })) }),
    })
    const first = Cipher.fromEnv(env(['current', 'next', 'previous', 'retired']))
    const v0 = first.encrypt('x')
    assert.equal(Cipher.kidOf(v0), 'k0')
    const second = Cipher.fromEnv(env(['retired', 'current', 'previous', 'revoked']))
    assert.equal(code(() => second.decrypt(v0)), 'ERR_KEY_RETIRED')
    const third = Cipher.fromEnv(env(['previous', 'current', 'retired', 'revoked']))
    assert.equal(third.decrypt(v0).toString(), 'x')
    const fourth = Cipher.fromEnv(env(['revoked', 'current', 'retired', 'previous']))
    assert.equal(code(() => fourth.decrypt(v0)), 'ERR_KEY_REVOKED')
  })

  it('reports every configuration problem at once, and never echoes a key', () => {
    const weakKey = 'short-key-but-secret'
    const err = (() => { try { Cipher.fromEnv({ ENCRYPTION_KEY: weakKey, ENCRYPTION_KEY_PREV: 'another-weak-one' }) } catch (e) { return e as RekeyError } })()
    assert.equal(err?.code, 'ERR_WEAK_SECRET')
    assert.equal(err?.problems.length, 2)
    assert.ok(!err?.message.includes(weakKey))
    assert.equal(code(() => Cipher.fromEnv({})), 'ERR_CONFIG')
    assert.equal(code(() => Cipher.fromEnv({ ENCRYPTION_KEY_PREV: KEY })), 'ERR_CONFIG')
    assert.equal(code(() => Cipher.fromEnv({ ENCRYPTION_KEY: KEY, ENCRYPTION_KEYS: '[]' })), 'ERR_CONFIG')
    assert.equal(code(() => Cipher.fromEnv({ ENCRYPTION_KEYS: JSON.stringify([{ kty: 'oct', kid: 'a', k: 'AAAA' }]) })), 'ERR_CONFIG')
    const warnings: string[] = []
    Cipher.fromEnv({ ENCRYPTION_KEY: weakKey, REKEY_ALLOW_WEAK_SECRETS: '1' }, { onWarning: (m) => warnings.push(m) })
    assert.equal(warnings.length, 1)
    assert.ok(!warnings[0]?.includes(weakKey))
  })

  it('shows kids and states only, whichever way it is printed', () => {
    const cipher = Cipher.fromEnv({ ENCRYPTION_KEY: KEY, ENCRYPTION_KEY_PREV: OLD })
    const raw = [KEY, OLD, Buffer.from(KEY, 'hex').toString('base64'), Buffer.from(KEY, 'hex').toString('base64url')]
    for (const out of [inspect(cipher, { depth: 10, showHidden: true }), JSON.stringify(cipher), String(cipher), inspect(cipher.list())]) {
      for (const secret of raw) assert.ok(!out.includes(secret), out)
      assert.ok(out.includes(cipher.currentKid))
    }
  })

  it('counts encryptions per key, warns at half and 90 % of the bound, and refuses at the bound', () => {
    const warnings: string[] = []
    const cipher = Cipher.fromEnv({ ENCRYPTION_KEY: KEY }, { maxEncryptions: 10, onWarning: (m) => warnings.push(m) })
    for (let i = 0; i < 10; i++) cipher.encrypt('x')
    assert.equal(warnings.length, 2)
    assert.match(warnings[0] ?? '', /encrypted 5 of at most 10/)
    assert.match(warnings[1] ?? '', /encrypted 9 of at most 10/)
    assert.equal(code(() => cipher.encrypt('x')), 'ERR_UNSAFE')
    assert.equal(cipher.list()[0]?.encryptions, 10)
  })
})
