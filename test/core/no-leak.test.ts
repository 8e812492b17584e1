/**
 * No secret material, in any encoding, in anything a keyring shows: the keyring itself,
 * its KeyInfo list, its JWKS, its tokens and its errors, through util.inspect,
 * JSON.stringify and String().
 */
import assert from 'node:assert/strict'
import { createSecretKey } from 'node:crypto'
import { afterEach, describe, it, mock } from 'node:test'
import { format, inspect } from 'node:util'
import { generateSecret, Keyring, RekeyError } from '../../src/index.ts'
import { forgeHs, privateJwk } from './helpers.ts'

/** The text and the usual encodings of its bytes, plus the first half of each. */
function forms(secret: string | Buffer): string[] {
  const bytes = typeof secret === 'string' ? Buffer.from(secret) : secret
  const all = [bytes.toString('hex'), bytes.toString('base64'), bytes.toString('base64url'), bytes.toString('base64').replace(/=+$/, '')]
  if (typeof secret === 'string') all.push(secret)
  return [...all, ...all.map((f) => f.slice(0, Math.max(12, Math.floor(f.length / 2))))]
}

/** Every way a value is commonly shown. */
function shown(value: unknown): string {
  return [
    inspect(value),
    inspect(value, { showHidden: true, depth: Infinity, getters: true }),
    format('%o %O %s %j', value, value, value, value),
    JSON.stringify(value) ?? '',
    String(value),
  ].join('\n')
}

function assertHidden(text: string, secrets: ReadonlyArray<string | Buffer>, where: string): void {
  for (const secret of secrets) {
    for (const form of forms(secret)) assert.ok(!text.includes(form), `${where} shows secret material (${form.slice(0, 4)}…)`)
  }
}

const hex = generateSecret()
const b64 = generateSecret({ encoding: 'base64', bytes: 48 })
const text = 'correct horse battery staple, rotated quarterly'
const raw = Buffer.from(generateSecret({ encoding: 'hex', bytes: 32 }), 'hex')
const HS_SECRETS = [hex, b64, text, raw]

afterEach(() => mock.restoreAll())

describe('an HMAC keyring shows no secret', () => {
  const fromEnv = Keyring.fromEnv({ JWT_SECRET: hex, JWT_SECRET_PREV: b64 })
  const fromKeys = Keyring.fromKeys([
    { secret: text, state: 'current', createdAt: '2025-01-01T00:00:00.000Z' },
    { secret: raw, state: 'next' },
    { secret: createSecretKey(Buffer.from(hex)), kid: 'ko', state: 'revoked' },
  ])

  for (const [name, keyring] of [['fromEnv', fromEnv], ['fromKeys', fromKeys]] as const) {
    it(`${name}: the keyring, its list, its verifier`, () => {
      assertHidden(shown(keyring), HS_SECRETS, 'the keyring')
      assertHidden(shown(keyring.list()), HS_SECRETS, 'list()')
      assertHidden(shown(keyring.verifier()), HS_SECRETS, 'verifier()')
      assertHidden(shown(Object.entries(keyring)), HS_SECRETS, 'own properties')
      assertHidden(shown(structuredClone(keyring)), HS_SECRETS, 'a structured clone')
      assertHidden(keyring.sign({ sub: 'x' }), HS_SECRETS, 'a token')
      assert.deepEqual(keyring.jwks(), { keys: [] }, 'shared secrets are never published')
    })
  }

  it('a KeyInfo has only kid, alg, state and dates', () => {
    for (const info of fromKeys.list()) {
      for (const field of Object.keys(info)) assert.ok(['kid', 'alg', 'state', 'createdAt', 'activatedAt', 'retireAfter'].includes(field), field)
    }
    assert.deepEqual(fromKeys.list()[0], { kid: fromKeys.currentKid, alg: 'HS256', state: 'current', createdAt: '2025-01-01T00:00:00.000Z' })
  })

  it('String() and JSON show the kids and states', () => {
    assert.equal(String(fromEnv), `Keyring(current=${fromEnv.currentKid}, keys=2)`)
    assert.deepEqual(JSON.parse(JSON.stringify(fromEnv)), { currentKid: fromEnv.currentKid, keys: fromEnv.list() })
  })
})

describe('an asymmetric keyring shows no private key', () => {
  const keys = (['EdDSA', 'ES256', 'RS256'] as const).map((alg) => privateJwk(alg, `k-${alg}`))
  const privateParts = keys.flatMap(({ jwk }) => ['d', 'p', 'q', 'dp', 'dq', 'qi'].map((f) => jwk[f]).filter((v): v is string => typeof v === 'string'))
  const keyring = Keyring.fromEnv({ JWT_KEYS: JSON.stringify(keys.map(({ jwk }, i) => ({ ...jwk, status: i === 0 ? 'current' : 'previous' }))) })

  it('the keyring, its list and its JWKS', () => {
    assert.equal(privateParts.length, 1 + 1 + 6)
    const material = privateParts.map((p) => Buffer.from(p, 'base64url'))
    for (const [what, value] of [['keyring', keyring], ['list', keyring.list()], ['jwks', keyring.jwks()]] as const) {
      const out = shown(value)
      for (const part of privateParts) assert.ok(!out.includes(part) && !out.includes(part.slice(0, 16)), `${what} shows a private part`)
      assertHidden(out, material, what)
    }
    for (const key of keyring.jwks().keys) {
      assert.deepEqual(Object.keys(key).filter((f) => ['d', 'p', 'q', 'dp', 'dq', 'qi', 'k'].includes(f)), [])
    }
  })
})

describe('errors show no secret', () => {
  const keyring = Keyring.fromKeys([{ secret: hex, state: 'current' }, { secret: b64, state: 'revoked' }])
  const failures: Record<string, () => unknown> = {
    'bad signature': () => keyring.verify(forgeHs({ alg: 'HS256', kid: keyring.currentKid }, {}, text)),
    'kid-less bad signature': () => keyring.verify(forgeHs({ alg: 'HS256' }, {}, text)),
    'revoked key': () => keyring.verify(forgeHs({ alg: 'HS256' }, {}, b64)),
    'expired': () => keyring.verify(forgeHs({ alg: 'HS256', kid: keyring.currentKid }, { exp: 1 }, hex)),
    'malformed': () => keyring.verify(`${hex}.${b64}.${text}`),
    'weak secret': () => Keyring.fromEnv({ JWT_SECRET: 'tiny-secret' }),
    'contradiction': () => Keyring.fromEnv({ JWT_SECRET: hex, JWT_SECRET_NEW: b64, JWT_SECRET_CURRENT: text }),
    'JWT_KEYS that does not parse': () => Keyring.fromEnv({ JWT_KEYS: `{"keys":[{"kty":"oct","k":"${Buffer.from(text).toString('base64url')}"` }),
    'JWT_KEYS with a broken private key': () => Keyring.fromEnv({ JWT_KEYS: JSON.stringify([{ ...privateJwk('ES256', 'e').jwk, d: Buffer.from(text).toString('base64url') }]) }),
    'an update with a weak key': () => keyring.update([{ secret: hex, state: 'current' }, { secret: 'tiny-secret', state: 'previous' }]),
  }

  for (const [name, fail] of Object.entries(failures)) {
    it(name, () => {
      let err: unknown
      try {
        fail()
      } catch (e) {
        err = e
      }
      assert.ok(err instanceof RekeyError, `${name} throws a RekeyError`)
      const out = [shown(err), err.stack ?? '', err.message, ...err.problems, shown(err.cause)].join('\n')
      assertHidden(out, [...HS_SECRETS, 'tiny-secret'], name)
    })
  }

  it('the weak-secret warning names the variable, not the value', () => {
    const emit = mock.method(process, 'emitWarning', () => {})
    Keyring.fromEnv({ JWT_SECRET: 'tiny-secret', REKEY_ALLOW_WEAK_SECRETS: '1' })
    assert.equal(emit.mock.callCount(), 1)
    assertHidden(shown(emit.mock.calls[0]?.arguments), ['tiny-secret'], 'the warning')
  })
})
