/**
 * `Keyring.fromEnv`: every row of the contract's table 2.1, precedence, contradictions
 * reported together, weak secrets, and kids derived from the secrets.
 */
import assert from 'node:assert/strict'
import { afterEach, describe, it, mock } from 'node:test'
import { inspect } from 'node:util'
import { generateSecret, Keyring, RekeyError } from '../../src/index.ts'
import type { Env } from '../../src/index.ts'
import { forgeHs, NOW, NOW_MS, privateJwk, throwsCode } from './helpers.ts'

const S1 = 'env-secret-one-0123456789abcdef0123456789abcdef'
const S2 = 'env-secret-two-0123456789abcdef0123456789abcdef'
const S3 = 'env-secret-three-0123456789abcdef0123456789abcd'

const kidOf = (secret: string): string => Keyring.fromKeys([{ secret, state: 'current' }]).currentKid
const states = (keyring: Keyring): Record<string, string> => Object.fromEntries(keyring.list().map((k) => [k.kid, k.state]))

/** The ERR_CONFIG (or ERR_WEAK_SECRET) fromEnv throws for this environment. */
function configError(env: Env, code: 'ERR_CONFIG' | 'ERR_WEAK_SECRET' = 'ERR_CONFIG', purpose: 'access' | 'refresh' = 'access'): RekeyError {
  const err = throwsCode(() => Keyring.fromEnv(env, { purpose }), code)
  assert.equal(err.message, `Invalid ${purpose} key configuration: ${err.problems.join('; ')}`)
  return err
}

afterEach(() => mock.restoreAll())

describe('JWT_SECRET, JWT_SECRET_PREV', () => {
  it('JWT_SECRET alone: one HS256 key that signs', () => {
    const keyring = Keyring.fromEnv({ JWT_SECRET: S1 })
    assert.deepEqual(keyring.list(), [{ kid: kidOf(S1), alg: 'HS256', state: 'current' }])
    assert.equal(keyring.currentKid, kidOf(S1))
    assert.equal(keyring.expiresIn, 900)
  })

  it('JWT_SECRET_PREV verifies only', () => {
    const keyring = Keyring.fromEnv({ JWT_SECRET: S1, JWT_SECRET_PREV: S2 })
    assert.deepEqual(states(keyring), { [kidOf(S1)]: 'current', [kidOf(S2)]: 'previous' })
    const old = forgeHs({ alg: 'HS256', kid: kidOf(S2) }, { sub: 'u' }, S2)
    assert.equal(keyring.verify(old).state, 'previous')
  })

  it('JWT_SECRET_PREV equal to JWT_SECRET is one key, not a kid collision', () => {
    assert.equal(Keyring.fromEnv({ JWT_SECRET: S1, JWT_SECRET_PREV: S1 }).list().length, 1)
  })

  it('an empty variable counts as unset', () => {
    assert.equal(Keyring.fromEnv({ JWT_SECRET: S1, JWT_SECRET_PREV: '' }).list().length, 1)
  })

  it('JWT_SECRET_PREV without JWT_SECRET is a problem', () => {
    const err = configError({ JWT_SECRET_PREV: S2 })
    assert.deepEqual(err.problems, ['JWT_SECRET_PREV is set but JWT_SECRET is not'])
  })

  it('JWT_ALGORITHM picks HS384/HS512 and refuses the others', () => {
    assert.equal(Keyring.fromEnv({ JWT_SECRET: S1, JWT_ALGORITHM: 'HS512' }).list()[0]?.alg, 'HS512')
    const err = configError({ JWT_SECRET: S1, JWT_ALGORITHM: 'RS256' })
    assert.deepEqual(err.problems, ['JWT_ALGORITHM must be HS256, HS384 or HS512 for secrets from the environment'])
  })

  it('no key at all names the variables and `rekey gen`', () => {
    const err = configError({})
    assert.deepEqual(err.problems, ['no signing key: set JWT_SECRET (generate one with `rekey gen`), JWT_ACCESS_SECRET or JWT_KEYS'])
  })
})

describe('JWT_SECRET_CURRENT, JWT_SECRET_NEW, JWT_SECRET_ROTATION_DATE', () => {
  it('NEW signs, CURRENT verifies as previous, the date is parsed', () => {
    const keyring = Keyring.fromEnv({ JWT_SECRET_CURRENT: S1, JWT_SECRET_NEW: S2, JWT_SECRET_ROTATION_DATE: '2025-03-01T12:00:00+02:00' })
    assert.equal(keyring.currentKid, kidOf(S2))
    assert.deepEqual(keyring.list().find((k) => k.state === 'current'), { kid: kidOf(S2), alg: 'HS256', state: 'current', activatedAt: '2025-03-01T10:00:00.000Z' })
    assert.deepEqual(keyring.list().find((k) => k.state === 'previous'), { kid: kidOf(S1), alg: 'HS256', state: 'previous' })
    const before = forgeHs({ alg: 'HS256' }, { sub: 'u' }, S1)
    assert.equal(keyring.verify(before).state, 'previous')
  })

  it('a date-only rotation date is midnight UTC', () => {
    const keyring = Keyring.fromEnv({ JWT_SECRET_CURRENT: S1, JWT_SECRET_NEW: S2, JWT_SECRET_ROTATION_DATE: '2025-03-01' })
    assert.equal(keyring.list().find((k) => k.state === 'current')?.activatedAt, '2025-03-01T00:00:00.000Z')
  })

  it('JWT_SECRET_CURRENT alone signs', () => {
    assert.equal(Keyring.fromEnv({ JWT_SECRET_CURRENT: S1 }).currentKid, kidOf(S1))
  })

  it('a rotation date that is not ISO-8601 is a problem', () => {
    for (const date of ['next tuesday', '03/01/2025', '2025-13-45']) {
      const err = configError({ JWT_SECRET_CURRENT: S1, JWT_SECRET_NEW: S2, JWT_SECRET_ROTATION_DATE: date })
      assert.deepEqual(err.problems, ['JWT_SECRET_ROTATION_DATE must be an ISO-8601 date'], date)
    }
  })

  it('NEW without CURRENT, and a date without NEW, are problems', () => {
    assert.deepEqual(configError({ JWT_SECRET_NEW: S2 }).problems, ['JWT_SECRET_NEW is set but JWT_SECRET_CURRENT is not'])
    assert.deepEqual(configError({ JWT_SECRET_CURRENT: S1, JWT_SECRET_ROTATION_DATE: '2025-03-01' }).problems, ['JWT_SECRET_ROTATION_DATE is set but JWT_SECRET_NEW is not'])
  })
})

describe('JWT_ACCESS_SECRET, JWT_REFRESH_SECRET', () => {
  it('purpose access (the default) reads JWT_ACCESS_SECRET and _PREV', () => {
    const env = { JWT_ACCESS_SECRET: S1, JWT_ACCESS_SECRET_PREV: S2, JWT_REFRESH_SECRET: S3 }
    assert.deepEqual(states(Keyring.fromEnv(env)), { [kidOf(S1)]: 'current', [kidOf(S2)]: 'previous' })
    assert.deepEqual(states(Keyring.fromEnv(env, { purpose: 'access' })), { [kidOf(S1)]: 'current', [kidOf(S2)]: 'previous' })
  })

  it('purpose refresh reads JWT_REFRESH_SECRET and _PREV, with a 7-day default lifetime', () => {
    const keyring = Keyring.fromEnv({ JWT_ACCESS_SECRET: S1, JWT_REFRESH_SECRET: S2, JWT_REFRESH_SECRET_PREV: S3 }, { purpose: 'refresh' })
    assert.deepEqual(states(keyring), { [kidOf(S2)]: 'current', [kidOf(S3)]: 'previous' })
    assert.equal(keyring.expiresIn, 604_800)
  })

  it('an access keyring refuses refresh tokens: the keys are never shared', () => {
    const env = { JWT_ACCESS_SECRET: S1, JWT_REFRESH_SECRET: S2 }
    const refresh = Keyring.fromEnv(env, { purpose: 'refresh' }).sign({ sub: 'u' })
    throwsCode(() => Keyring.fromEnv(env).verify(refresh), 'ERR_KEY_UNKNOWN', 'The token names an unknown key')
  })

  it('refresh never falls back to JWT_SECRET', () => {
    const err = configError({ JWT_SECRET: S1 }, 'ERR_CONFIG', 'refresh')
    assert.deepEqual(err.problems, ['JWT_REFRESH_SECRET is not set (generate one with `rekey gen`)'])
  })

  it('JWT_REFRESH_SECRET_PREV alone is reported once', () => {
    const err = configError({ JWT_REFRESH_SECRET_PREV: S1 }, 'ERR_CONFIG', 'refresh')
    assert.deepEqual(err.problems, ['JWT_REFRESH_SECRET_PREV is set but JWT_REFRESH_SECRET is not'])
  })

  it('an unknown purpose is a TypeError', () => {
    assert.throws(() => Keyring.fromEnv({ JWT_SECRET: S1 }, { purpose: 'id' as 'access' }), { name: 'TypeError', message: 'purpose must be "access" or "refresh"' })
  })
})

describe('JWT_KEYS', () => {
  const ed = privateJwk('EdDSA', 'ed-1')
  const es = privateJwk('ES256', 'es-1')
  const oct = { kty: 'oct', kid: 'oct-1', alg: 'HS256', k: Buffer.from(S3).toString('base64url') }

  it('an array: the first key signs, the others verify', () => {
    const keyring = Keyring.fromEnv({ JWT_KEYS: JSON.stringify([ed.jwk, es.jwk, oct]) })
    assert.deepEqual(keyring.list(), [
      { kid: 'ed-1', alg: 'EdDSA', state: 'current' },
      { kid: 'es-1', alg: 'ES256', state: 'previous' },
      { kid: 'oct-1', alg: 'HS256', state: 'previous' },
    ])
  })

  it('{ keys: [...] } with a status per key', () => {
    const keys = [{ ...ed.jwk, status: 'next' }, { ...es.jwk, status: 'current' }, { ...oct, status: 'revoked' }]
    const keyring = Keyring.fromEnv({ JWT_KEYS: JSON.stringify({ keys }) })
    assert.deepEqual(states(keyring), { 'ed-1': 'next', 'es-1': 'current', 'oct-1': 'revoked' })
    assert.equal(keyring.currentKid, 'es-1')
    // The JWKS publishes the asymmetric keys that verify, never the oct key.
    assert.deepEqual(keyring.jwks().keys.map((k) => k.kid).sort(), ['ed-1', 'es-1'])
  })

  it('an oct JWK signs HS256 with its decoded bytes', () => {
    const keyring = Keyring.fromEnv({ JWT_KEYS: JSON.stringify([oct]) })
    const token = forgeHs({ alg: 'HS256', kid: 'oct-1' }, { sub: 'o' }, Buffer.from(S3))
    assert.equal(keyring.verify(token).payload.sub, 'o')
  })

  it('every bad entry is reported, by index', () => {
    const err = configError({ JWT_KEYS: JSON.stringify([{ kty: 'oct' }, 'x', { ...oct, status: 'active' }, { ...ed.jwk, alg: 'ES256' }]) })
    assert.deepEqual(err.problems, [
      'JWT_KEYS[0] needs kid, alg',
      'JWT_KEYS[1] is not an object',
      'JWT_KEYS[2] has an unknown status (use next, current, previous, retired or revoked)',
      'JWT_KEYS[3]: ES256 needs a JWK of kty EC',
      'no key is current: exactly one key must sign',
    ])
  })

  it('not JSON, not a list, an empty list', () => {
    assert.deepEqual(configError({ JWT_KEYS: '[{' }).problems, ['JWT_KEYS is not valid JSON'])
    for (const raw of ['{}', '[]', '{"keys":[]}', '"keys"', 'null']) {
      assert.deepEqual(configError({ JWT_KEYS: raw }).problems, ['JWT_KEYS must be a non-empty array of JWKs or { "keys": [...] }'], raw)
    }
  })

  it('two current keys, or a duplicate kid, are problems', () => {
    const two = configError({ JWT_KEYS: JSON.stringify([{ ...ed.jwk, status: 'current' }, { ...es.jwk, status: 'current' }]) })
    assert.deepEqual(two.problems, ['2 keys are current: exactly one key must sign'])
    const dup = configError({ JWT_KEYS: JSON.stringify([ed.jwk, { ...es.jwk, kid: 'ed-1' }]) })
    assert.deepEqual(dup.problems, ['kid ed-1 is used by two keys'])
  })

  it('a private JWK whose d does not belong to its public part is refused at load', () => {
    const stranger = privateJwk('ES256', 'x').jwk.d
    const outOfRange = Buffer.alloc(32, 0xff).toString('base64url')
    for (const d of [stranger, outOfRange]) {
      assert.deepEqual(configError({ JWT_KEYS: JSON.stringify([{ ...es.jwk, d }]) }).problems, ['JWT_KEYS[0]: the private and public parts of the JWK do not match'])
    }
  })

  it('a public-only current key cannot sign', () => {
    const { d: _d, ...pub } = ed.jwk
    assert.deepEqual(configError({ JWT_KEYS: JSON.stringify([pub]) }).problems, ['key ed-1: the current key has no private material to sign with'])
  })
})

describe('JWT_EXPIRATION, JWT_REFRESH_EXPIRATION', () => {
  it('set the lifetime of the tokens each keyring signs', () => {
    mock.timers.enable({ apis: ['Date'], now: NOW_MS })
    try {
      const env = { JWT_SECRET: S1, JWT_REFRESH_SECRET: S2, JWT_EXPIRATION: '5m', JWT_REFRESH_EXPIRATION: '30d' }
      const access = Keyring.fromEnv(env)
      const refresh = Keyring.fromEnv(env, { purpose: 'refresh' })
      assert.equal(access.expiresIn, 300)
      assert.equal(refresh.expiresIn, 30 * 86_400)
      assert.equal(access.verify(access.sign({})).payload.exp, NOW + 300)
      assert.equal(refresh.verify(refresh.sign({})).payload.exp, NOW + 30 * 86_400)
      assert.equal(Keyring.fromEnv({ JWT_SECRET: S1, JWT_EXPIRATION: '3600' }).expiresIn, 3600)
    } finally {
      mock.timers.reset()
    }
  })

  it('a lifetime that is not a positive duration is a problem', () => {
    for (const raw of ['soon', '0', '-5', '15 fortnights']) {
      assert.deepEqual(configError({ JWT_SECRET: S1, JWT_EXPIRATION: raw }).problems, ['JWT_EXPIRATION must be a positive duration such as 900, "15m" or "1h"'], raw)
    }
    assert.deepEqual(configError({ JWT_REFRESH_SECRET: S1, JWT_REFRESH_EXPIRATION: 'x' }, 'ERR_CONFIG', 'refresh').problems, ['JWT_REFRESH_EXPIRATION must be a positive duration such as 900, "15m" or "1h"'])
  })
})

describe('precedence and contradictions', () => {
  it('JWT_ACCESS_SECRET beats every generic convention, silently', () => {
    const keyring = Keyring.fromEnv({ JWT_ACCESS_SECRET: S1, JWT_SECRET: S2, JWT_SECRET_NEW: S3, JWT_KEYS: '[' })
    assert.deepEqual(states(keyring), { [kidOf(S1)]: 'current' })
  })

  it('JWT_ACCESS_SECRET_PREV alone still selects the access variables', () => {
    assert.deepEqual(configError({ JWT_ACCESS_SECRET_PREV: S1, JWT_SECRET: S2 }).problems, ['JWT_ACCESS_SECRET_PREV is set but JWT_ACCESS_SECRET is not'])
  })

  it('two generic conventions at once are a contradiction, not a guess', () => {
    assert.deepEqual(configError({ JWT_SECRET: S1, JWT_SECRET_NEW: S2, JWT_SECRET_CURRENT: S3 }).problems, [
      'JWT_SECRET_CURRENT/JWT_SECRET_NEW and JWT_SECRET are set together: keep one convention',
    ])
    // The convention not chosen is still read, so its own problems come in the same report.
    assert.deepEqual(configError({ JWT_SECRET_PREV: S1, JWT_SECRET_ROTATION_DATE: '2025-01-01', JWT_SECRET_CURRENT: S2, JWT_SECRET_NEW: S3 }).problems, [
      'JWT_SECRET_CURRENT/JWT_SECRET_NEW and JWT_SECRET are set together: keep one convention',
      'JWT_SECRET_PREV is set but JWT_SECRET is not',
    ])
    const three = configError({ JWT_SECRET: S1, JWT_SECRET_CURRENT: S2, JWT_KEYS: JSON.stringify([privateJwk('EdDSA', 'e').jwk]) })
    assert.deepEqual(three.problems, ['JWT_KEYS and JWT_SECRET_CURRENT/JWT_SECRET_NEW and JWT_SECRET are set together: keep one convention'])
  })

  it('every problem is in one ERR_CONFIG', () => {
    const err = configError({ JWT_ALGORITHM: 'none', JWT_EXPIRATION: 'forever', JWT_SECRET: S1, JWT_KEYS: 'not json' })
    assert.deepEqual(err.problems, [
      'JWT_ALGORITHM must be HS256, HS384 or HS512 for secrets from the environment',
      'JWT_EXPIRATION must be a positive duration such as 900, "15m" or "1h"',
      'JWT_KEYS and JWT_SECRET are set together: keep one convention',
      'JWT_KEYS is not valid JSON',
    ])
    assert.ok(Object.isFrozen(err.problems))
  })

  it('a weak secret beside the chosen convention is reported with the contradiction', () => {
    const err = configError({ JWT_SECRET_CURRENT: S1, JWT_SECRET: 'short' })
    assert.deepEqual(err.problems, [
      'JWT_SECRET_CURRENT/JWT_SECRET_NEW and JWT_SECRET are set together: keep one convention',
      'JWT_SECRET: the secret is 5 bytes; at least 32 are required (generate one with `rekey gen`)',
    ])
  })

  it('a calendar date that does not exist is refused, not rolled over', () => {
    const err = configError({ JWT_SECRET_CURRENT: S1, JWT_SECRET_NEW: S2, JWT_SECRET_ROTATION_DATE: '2025-02-30' })
    assert.deepEqual(err.problems, ['JWT_SECRET_ROTATION_DATE must be an ISO-8601 date'])
  })
})

describe('weak secrets', () => {
  it('under 32 bytes is ERR_WEAK_SECRET, naming the variable and `rekey gen`', () => {
    const err = configError({ JWT_SECRET: 'x'.repeat(31) }, 'ERR_WEAK_SECRET')
    assert.equal(err.message, 'Invalid access key configuration: JWT_SECRET: the secret is 31 bytes; at least 32 are required (generate one with `rekey gen`)')
    assert.equal(err.status, 500)
  })

  it('32 bytes is enough, and bytes are counted in UTF-8', () => {
    assert.ok(Keyring.fromEnv({ JWT_SECRET: 'x'.repeat(32) }))
    assert.ok(Keyring.fromEnv({ JWT_SECRET: 'é'.repeat(16) }), '16 characters, 32 bytes')
    configError({ JWT_SECRET: 'é'.repeat(15) + 'x' }, 'ERR_WEAK_SECRET')
  })

  it('a weak grace key and a weak refresh key are refused too', () => {
    assert.deepEqual(configError({ JWT_SECRET: S1, JWT_SECRET_PREV: 'old' }, 'ERR_WEAK_SECRET').problems, [
      'JWT_SECRET_PREV: the secret is 3 bytes; at least 32 are required (generate one with `rekey gen`)',
    ])
    configError({ JWT_REFRESH_SECRET: 'refresh' }, 'ERR_WEAK_SECRET', 'refresh')
  })

  it('a weak secret beside another problem is reported in one ERR_CONFIG', () => {
    const err = configError({ JWT_SECRET: 'weak', JWT_EXPIRATION: 'never' })
    assert.deepEqual(err.problems, [
      'JWT_EXPIRATION must be a positive duration such as 900, "15m" or "1h"',
      'JWT_SECRET: the secret is 4 bytes; at least 32 are required (generate one with `rekey gen`)',
    ])
  })

  it('REKEY_ALLOW_WEAK_SECRETS=1 accepts them with a process warning', () => {
    const emit = mock.method(process, 'emitWarning', () => {})
    const keyring = Keyring.fromEnv({ JWT_SECRET: 'weak-but-allowed', REKEY_ALLOW_WEAK_SECRETS: '1' })
    assert.equal(keyring.verify(keyring.sign({ sub: 'w' })).payload.sub, 'w')
    assert.equal(emit.mock.callCount(), 1)
    const [message, options] = emit.mock.calls[0]?.arguments ?? []
    assert.equal(message, 'JWT_SECRET: a weak secret (16 bytes) is accepted because REKEY_ALLOW_WEAK_SECRETS is set; replace it with `rekey gen`')
    assert.deepEqual(options, { code: 'REKEY_WEAK_SECRET' })
  })

  it('only the value 1 allows them', () => {
    for (const v of ['true', 'yes', '0']) configError({ JWT_SECRET: 'weak', REKEY_ALLOW_WEAK_SECRETS: v }, 'ERR_WEAK_SECRET')
  })
})

describe('no secret value in any configuration error', () => {
  const WEAK = 'hunter2-weak'
  const cases: Record<string, Env> = {
    'weak secret': { JWT_SECRET: WEAK },
    'weak grace key': { JWT_SECRET: S1, JWT_SECRET_PREV: WEAK },
    'contradiction': { JWT_SECRET: S1, JWT_SECRET_NEW: S2, JWT_SECRET_CURRENT: S3 },
    'lone grace key': { JWT_SECRET_PREV: S1, JWT_EXPIRATION: 'x' },
    'JWT_KEYS that is not JSON': { JWT_KEYS: `[{"kty":"oct","kid":"a","alg":"HS256","k":"${S1}"` },
    'JWT_KEYS with a bad oct key': { JWT_KEYS: JSON.stringify([{ kty: 'oct', kid: 'a', alg: 'HS256', k: Buffer.from(WEAK).toString('base64url') }]) },
  }
  for (const [name, env] of Object.entries(cases)) {
    it(name, () => {
      let err: unknown
      try {
        Keyring.fromEnv(env)
      } catch (e) {
        err = e
      }
      assert.ok(err instanceof RekeyError)
      const shown = [err.message, err.stack, inspect(err, { showHidden: true, depth: 5 }), JSON.stringify(err), String(err), ...err.problems].join('\n')
      for (const secret of [WEAK, S1, S2, S3, Buffer.from(WEAK).toString('base64url')]) {
        assert.ok(!shown.includes(secret), `${name} shows a secret`)
      }
    })
  }
})

describe('kid derivation', () => {
  it('is deterministic across keyrings and conventions', () => {
    const a = Keyring.fromEnv({ JWT_SECRET: S1 }).currentKid
    const b = Keyring.fromEnv({ JWT_ACCESS_SECRET: S1 }).currentKid
    const c = Keyring.fromEnv({ JWT_SECRET_CURRENT: S3, JWT_SECRET_NEW: S1 }).currentKid
    assert.equal(a, b)
    assert.equal(a, c)
  })

  it('is stable across versions: a known answer (HMAC-SHA-256 of "rekey/kid/v1", 16 base64url chars)', () => {
    // Instances on different versions must agree during a rolling deploy.
    assert.equal(Keyring.fromEnv({ JWT_SECRET: 'rekey-known-answer-secret-0123456789abcdef' }).currentKid, 'XB4GauSvGq3yET-0')
  })

  it('differs for different secrets, even one bit apart', () => {
    const kids = new Set([S1, S2, S3, `${S1.slice(0, -1)}e`, generateSecret(), generateSecret()].map(kidOf))
    assert.equal(kids.size, 6)
  })

  it('shows nothing of the secret', () => {
    for (const secret of [S1, 'a'.repeat(40), generateSecret({ encoding: 'base64url' })]) {
      const kid = kidOf(secret)
      assert.match(kid, /^[A-Za-z0-9_-]{16}$/)
      assert.ok(!secret.includes(kid) && !kid.includes(secret.slice(0, 8)))
      assert.ok(!Buffer.from(secret).toString('base64url').includes(kid.slice(0, 8)))
    }
  })

  it('a token signed by one instance verifies on another with the same env', () => {
    const token = Keyring.fromEnv({ JWT_SECRET: S1 }).sign({ sub: 'x' })
    assert.equal(Keyring.fromEnv({ JWT_SECRET: S2, JWT_SECRET_PREV: S1 }).verify(token).state, 'previous')
  })
})
