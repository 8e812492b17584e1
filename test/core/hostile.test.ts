/**
 * A hostile corpus: the classic JWT attacks and malformed input, each pinned to the code a
 * caller sees, then a seeded mutation fuzz loop. Nothing here may escape as anything but a
 * RekeyError (or a TypeError for a non-string argument).
 */
import assert from 'node:assert/strict'
import { sign as cryptoSign } from 'node:crypto'
import { describe, it } from 'node:test'
import { ERRORS, isRekeyError, Keyring, MAX_TOKEN_LENGTH } from '../../src/index.ts'
import { b64u, forgeHs, hmac, privateJwk, resignHs, seededRandom, throwsCode } from './helpers.ts'

const SECRET = 'hostile-secret-0123456789abcdef0123456789abcdef'
const OTHER = 'hostile-other-secret-0123456789abcdef0123456789'
const hs = Keyring.fromKeys([{ secret: SECRET, state: 'current' }, { secret: OTHER, state: 'previous' }])
const K = hs.currentKid
const K_OTHER = hs.list().find((k) => k.state === 'previous')?.kid as string
const valid = hs.sign({ sub: 'victim', role: 'user' })
const [H, P, S] = valid.split('.') as [string, string, string]

const rsa = privateJwk('RS256', 'rsa-1')
const rs = Keyring.fromKeys([{ jwk: rsa.jwk, state: 'current' }])
const es = privateJwk('ES256', 'es-1')
const esRing = Keyring.fromKeys([{ jwk: es.jwk, state: 'current' }])
const ed = privateJwk('EdDSA', 'ed-1')
const edRing = Keyring.fromKeys([{ jwk: ed.jwk, state: 'current' }])

const MALFORMED = 'The token is not a compact JWS'

/** An RS256/ES256 signature made outside rekey, as an attacker with some private key would. */
function signAsym(alg: 'RS256' | 'ES256', key: ReturnType<typeof privateJwk>['privateKey'], header: unknown, payload: unknown): string {
  const input = `${b64u(header)}.${b64u(payload)}`
  const sig = cryptoSign('sha256', Buffer.from(input), alg === 'ES256' ? { key, dsaEncoding: 'ieee-p1363' } : key)
  return `${input}.${sig.toString('base64url')}`
}

describe('alg none', () => {
  it('an unsecured JWS (empty signature) is malformed', () => {
    throwsCode(() => hs.verify(`${b64u({ alg: 'none' })}.${P}.`), 'ERR_TOKEN_MALFORMED', MALFORMED)
  })

  for (const alg of ['none', 'None', 'NONE', 'nOnE']) {
    it(`"${alg}" with any signature, with or without kid`, () => {
      throwsCode(() => hs.verify(`${b64u({ alg })}.${P}.${S}`), 'ERR_TOKEN_ALG', 'No key of the keyring uses the token algorithm')
      throwsCode(() => hs.verify(`${b64u({ alg, kid: K })}.${P}.${S}`), 'ERR_TOKEN_ALG', 'The token algorithm does not match its key')
      throwsCode(() => rs.verify(`${b64u({ alg, kid: 'rsa-1' })}.${P}.${S}`), 'ERR_TOKEN_ALG', 'The token algorithm does not match its key')
    })
  }

  it('a missing or non-string alg', () => {
    for (const header of [{ kid: K }, { alg: null, kid: K }, { alg: 256 }, { alg: ['HS256'] }]) {
      throwsCode(() => hs.verify(forgeHs(header, { sub: 'x' }, SECRET)), 'ERR_TOKEN_ALG', 'The header has no "alg"')
    }
  })

  it('a duplicated alg member: the last one is read, and it is refused', () => {
    const header = Buffer.from(`{"alg":"HS256","kid":"${K}","alg":"none"}`).toString('base64url')
    throwsCode(() => hs.verify(resignHs(header, P, SECRET)), 'ERR_TOKEN_ALG')
  })
})

describe('algorithm confusion', () => {
  const pem = rsa.publicKey.export({ format: 'pem', type: 'spki' }).toString()
  const pkcs1 = rsa.publicKey.export({ format: 'pem', type: 'pkcs1' }).toString()

  it('HS256 signed with the RSA public key PEM as HMAC secret, against an RS256 keyring', () => {
    for (const key of [pem, pkcs1, JSON.stringify(rs.jwks().keys[0])]) {
      throwsCode(() => rs.verify(forgeHs({ alg: 'HS256', typ: 'JWT', kid: 'rsa-1' }, { sub: 'admin' }, key)), 'ERR_TOKEN_ALG', 'The token algorithm does not match its key')
      throwsCode(() => rs.verify(forgeHs({ alg: 'HS256', typ: 'JWT' }, { sub: 'admin' }, key)), 'ERR_TOKEN_ALG', 'No key of the keyring uses the token algorithm')
    }
  })

  it('the same attack against a keyring holding both an HMAC and an RSA key', () => {
    const mixed = Keyring.fromKeys([{ secret: SECRET, state: 'current' }, { jwk: rsa.jwk, state: 'previous' }])
    throwsCode(() => mixed.verify(forgeHs({ alg: 'HS256', kid: 'rsa-1' }, { sub: 'admin' }, pem)), 'ERR_TOKEN_ALG')
    throwsCode(() => mixed.verify(forgeHs({ alg: 'HS256' }, { sub: 'admin' }, pem)), 'ERR_TOKEN_SIGNATURE')
  })

  it('a header that says HS512 against an HS256 key, even signed with the right secret', () => {
    throwsCode(() => hs.verify(forgeHs({ alg: 'HS512', kid: K }, { sub: 'x' }, SECRET, 'HS512')), 'ERR_TOKEN_ALG', 'The token algorithm does not match its key')
    throwsCode(() => hs.verify(forgeHs({ alg: 'HS512' }, { sub: 'x' }, SECRET, 'HS512')), 'ERR_TOKEN_ALG', 'No key of the keyring uses the token algorithm')
  })

  it('a header that says HS256 over an HS512 MAC', () => {
    throwsCode(() => hs.verify(forgeHs({ alg: 'HS256', kid: K }, { sub: 'x' }, SECRET, 'HS512')), 'ERR_TOKEN_SIGNATURE')
  })

  it('ES256 and EdDSA headers against each other\'s keys', () => {
    const edToken = edRing.sign({ sub: 'x' })
    throwsCode(() => esRing.verify(edToken), 'ERR_KEY_UNKNOWN')
    const relabeled = `${b64u({ alg: 'ES256', kid: 'ed-1' })}.${edToken.split('.').slice(1).join('.')}`
    const both = Keyring.fromKeys([{ jwk: ed.jwk, state: 'current' }, { jwk: es.jwk, state: 'previous' }])
    throwsCode(() => both.verify(relabeled), 'ERR_TOKEN_ALG')
  })
})

describe('kid', () => {
  it('pointing at another key of the keyring does not fall back', () => {
    throwsCode(() => hs.verify(forgeHs({ alg: 'HS256', kid: K }, { sub: 'x' }, OTHER)), 'ERR_TOKEN_SIGNATURE', 'The token signature is invalid')
    throwsCode(() => hs.verify(forgeHs({ alg: 'HS256', kid: K_OTHER }, { sub: 'x' }, SECRET)), 'ERR_TOKEN_SIGNATURE', 'The token signature is invalid')
  })

  const strange = [
    '../../../../etc/passwd', '/dev/null', '..\\..\\windows\\win.ini', "' OR '1'='1", '1; DROP TABLE keys; --',
    'http://evil.example/key.pem', '__proto__', 'constructor', 'toString', 'hasOwnProperty', `${K} `, ` ${K}`, K.toLowerCase(),
    `${K}\u0000`, 'é', '*', '%00',
  ]
  for (const kid of strange) {
    it(`${JSON.stringify(kid)} is an unknown key, even signed with the right secret`, () => {
      throwsCode(() => hs.verify(forgeHs({ alg: 'HS256', kid }, { sub: 'x' }, SECRET)), 'ERR_KEY_UNKNOWN', 'The token names an unknown key')
    })
  }

  it('an empty or non-string kid is malformed', () => {
    for (const kid of ['', 1, null, [K], { K: true }, true]) {
      throwsCode(() => hs.verify(forgeHs({ alg: 'HS256', kid }, { sub: 'x' }, SECRET)), 'ERR_TOKEN_MALFORMED', 'The header "kid" must be a non-empty string')
    }
  })
})

describe('embedded keys and key URLs in the header are ignored', () => {
  const attacker = privateJwk('RS256', 'attacker')
  const attackerJwk = { kty: 'RSA', n: attacker.jwk.n, e: attacker.jwk.e }

  it('a token signed by the attacker\'s key, offered in jwk / jku / x5u / x5c', () => {
    const extras = [
      { jwk: attackerJwk },
      { jku: 'https://evil.example/jwks.json' },
      { x5u: 'https://evil.example/cert.pem' },
      { x5c: ['MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA'] },
    ]
    for (const extra of extras) {
      throwsCode(() => rs.verify(signAsym('RS256', attacker.privateKey, { alg: 'RS256', ...extra }, { sub: 'admin' })), 'ERR_TOKEN_SIGNATURE')
      throwsCode(() => rs.verify(signAsym('RS256', attacker.privateKey, { alg: 'RS256', kid: 'rsa-1', ...extra }, { sub: 'admin' })), 'ERR_TOKEN_SIGNATURE')
      throwsCode(() => rs.verify(signAsym('RS256', attacker.privateKey, { alg: 'RS256', kid: 'attacker', ...extra }, { sub: 'admin' })), 'ERR_KEY_UNKNOWN')
    }
  })

  it('the same headers on a genuine token change nothing', () => {
    const token = signAsym('RS256', rsa.privateKey, { alg: 'RS256', kid: 'rsa-1', jwk: attackerJwk, jku: 'https://evil.example/', x5u: 'https://evil.example/' }, { sub: 'real' })
    assert.deepEqual([rs.verify(token).kid, rs.verify(token).payload.sub], ['rsa-1', 'real'])
  })
})

describe('crit and b64 (RFC 7515 §4.1.11, RFC 7797)', () => {
  it('crit with an unknown extension is refused, even with a valid signature', () => {
    for (const crit of [['exp'], ['http://example.com/ext'], [], 'b64']) {
      const token = forgeHs({ alg: 'HS256', kid: K, crit, exp: 1 }, { sub: 'x' }, SECRET)
      throwsCode(() => hs.verify(token), 'ERR_TOKEN_MALFORMED', 'The header lists critical extensions rekey does not support')
    }
  })

  it('b64:false (unencoded payload) is refused', () => {
    throwsCode(() => hs.verify(forgeHs({ alg: 'HS256', kid: K, b64: false }, { sub: 'x' }, SECRET)), 'ERR_TOKEN_MALFORMED', 'The "b64" header parameter is not supported')
    throwsCode(() => hs.verify(forgeHs({ alg: 'HS256', kid: K, b64: false, crit: ['b64'] }, { sub: 'x' }, SECRET)), 'ERR_TOKEN_MALFORMED')
  })
})

describe('segments', () => {
  const cases: Record<string, string> = {
    'empty string': '',
    'one dot': '.',
    'two dots': '..',
    'empty header': `.${P}.${S}`,
    'empty payload': `${H}..${S}`,
    'empty signature': `${H}.${P}.`,
    'one segment': valid.replaceAll('.', ''),
    'two segments': `${H}.${P}`,
    'four segments': `${valid}.${S}`,
    'a trailing dot': `${valid}.`,
    'a leading dot': `.${valid}`,
    'a JWE (five segments)': `${H}.${P}.${P}.${P}.${S}`,
  }
  for (const [name, token] of Object.entries(cases)) {
    it(name, () => { throwsCode(() => hs.verify(token), 'ERR_TOKEN_MALFORMED', MALFORMED) })
  }
})

describe('characters outside base64url', () => {
  const bad = ['+', '/', '=', ' ', '\t', '\n', '\r', '%', '!', '~', '\u00e9', '\u0000', '\uD83D\uDD11']
  const positions = (s: string): number[] => [0, Math.floor(s.length / 2), s.length]
  const insert = (s: string, at: number, c: string): string => s.slice(0, at) + c + s.slice(at)

  for (const c of bad) {
    it(`${JSON.stringify(c)} in the header or payload, re-signed with the right key`, () => {
      for (const at of positions(H)) {
        throwsCode(() => hs.verify(resignHs(insert(H, at, c), P, SECRET)), 'ERR_TOKEN_MALFORMED', 'The header is not base64url')
      }
      for (const at of positions(P)) {
        throwsCode(() => hs.verify(resignHs(H, insert(P, at, c), SECRET)), 'ERR_TOKEN_MALFORMED', 'The payload is not base64url')
      }
      // Kid-less: every key is tried, the verdict is the same.
      const kidless = b64u({ alg: 'HS256' })
      throwsCode(() => hs.verify(resignHs(kidless, insert(P, 1, c), SECRET)), 'ERR_TOKEN_MALFORMED')
    })

    it(`${JSON.stringify(c)} in the signature (HS256, ES256, EdDSA)`, () => {
      for (const [ring, token] of [[hs, valid], [esRing, esRing.sign({})], [edRing, edRing.sign({})]] as const) {
        const dot = token.lastIndexOf('.') + 1
        for (const at of positions(token.slice(dot))) {
          throwsCode(() => ring.verify(insert(token, dot + at, c)), 'ERR_TOKEN_MALFORMED', MALFORMED)
        }
      }
    })
  }

  it('the same bytes in standard base64 with padding are not the same token', () => {
    const std = (seg: string): string => Buffer.from(seg, 'base64url').toString('base64')
    throwsCode(() => hs.verify(resignHs(std(H), P, SECRET)), 'ERR_TOKEN_MALFORMED')
    throwsCode(() => hs.verify(resignHs(H, std(P), SECRET)), 'ERR_TOKEN_MALFORMED')
    for (const [ring, token] of [[hs, valid], [esRing, esRing.sign({})], [edRing, edRing.sign({})], [rs, rs.sign({})]] as const) {
      const [h, p, s] = token.split('.') as [string, string, string]
      assert.notEqual(std(s), s)
      throwsCode(() => ring.verify(`${h}.${p}.${std(s)}`), 'ERR_TOKEN_MALFORMED', MALFORMED)
    }
  })

  it('a segment of 4n+1 characters cannot be base64url', () => {
    let p = P
    while (p.length % 4 !== 1) p += 'A'
    throwsCode(() => hs.verify(resignHs(H, p, SECRET)), 'ERR_TOKEN_MALFORMED', 'The payload is not base64url')
  })
})

describe('header and payload must be JSON objects', () => {
  const notObjects = ['[]', '[{"alg":"HS256"}]', 'null', '"HS256"', '42', 'true']
  const notJson = ['', '{', '{"alg":"HS256"', "{'alg':'HS256'}", '\uFEFF{"alg":"HS256"}', 'alg=HS256', '\u0000']

  it('a header that is not a JSON object', () => {
    for (const h of notObjects) throwsCode(() => hs.verify(resignHs(b64u(h), P, SECRET)), 'ERR_TOKEN_MALFORMED', 'The header is not a JSON object')
    for (const h of notJson.filter((x) => x !== '')) throwsCode(() => hs.verify(resignHs(b64u(h), P, SECRET)), 'ERR_TOKEN_MALFORMED', 'The header is not JSON')
  })

  it('a payload that is not a JSON object, even with a valid signature', () => {
    for (const p of notObjects) throwsCode(() => hs.verify(resignHs(H, b64u(p), SECRET)), 'ERR_TOKEN_MALFORMED', 'The payload is not a JSON object')
    for (const p of notJson.filter((x) => x !== '')) throwsCode(() => hs.verify(resignHs(H, b64u(p), SECRET)), 'ERR_TOKEN_MALFORMED', 'The payload is not JSON')
  })
})

describe('size', () => {
  it('a huge token is refused unread, fast', () => {
    for (const token of ['a'.repeat(10_000_000), `${H}.${'A'.repeat(10_000_000)}.${S}`, `${'.'.repeat(5_000_000)}`]) {
      const started = performance.now()
      for (let i = 0; i < 1000; i++) throwsCode(() => hs.verify(token), 'ERR_TOKEN_MALFORMED', 'The token is too long')
      assert.ok(performance.now() - started < 500, 'a thousand refusals of a 10 MB token take milliseconds: nothing is scanned')
    }
  })

  it(`${MAX_TOKEN_LENGTH} characters are read, one more is not`, () => {
    // Header and payload padding together reach any length (a base64url segment alone skips 4n+1).
    const sized = (length: number): string | undefined => {
      for (let h = 0; h < 4; h++) {
        for (let pad = 6000; pad < MAX_TOKEN_LENGTH; pad++) {
          const t = forgeHs({ alg: 'HS256', kid: K, h: 'h'.repeat(h) }, { sub: 's', pad: 'p'.repeat(pad) }, SECRET)
          if (t.length === length) return t
          if (t.length > length) break
        }
      }
      return undefined
    }
    const atLimit = sized(MAX_TOKEN_LENGTH)
    const over = sized(MAX_TOKEN_LENGTH + 1)
    assert.ok(atLimit !== undefined && over !== undefined)
    assert.equal(MAX_TOKEN_LENGTH, 8192)
    assert.equal(atLimit.length, 8192)
    assert.equal(hs.verify(atLimit).kid, K)
    throwsCode(() => hs.verify(over), 'ERR_TOKEN_MALFORMED', 'The token is too long')
  })

  it('a header over 1024 characters is refused', () => {
    throwsCode(() => hs.verify(forgeHs({ alg: 'HS256', kid: K, x: 'x'.repeat(1000) }, {}, SECRET)), 'ERR_TOKEN_MALFORMED', 'The header is too long')
  })
})

describe('hostile JSON', () => {
  it('deeply nested arrays and objects in the payload parse without a crash', () => {
    const arrays = `{"sub":"deep","a":${'['.repeat(2500)}${']'.repeat(2500)}}`
    const objects = `{"sub":"deep","a":${'{"a":'.repeat(1000)}1${'}'.repeat(1000)}}`
    for (const payload of [arrays, objects]) {
      const token = resignHs(H, b64u(payload), SECRET)
      assert.ok(token.length <= MAX_TOKEN_LENGTH)
      assert.equal(hs.verify(token).payload.sub, 'deep')
    }
  })

  it('deep nesting in the header', () => {
    const header = `{"alg":"HS256","kid":"${K}","x":${'['.repeat(300)}${']'.repeat(300)}}`
    assert.equal(hs.verify(resignHs(b64u(header), P, SECRET)).kid, K)
  })

  it('__proto__ in the payload pollutes nothing', () => {
    const payload = '{"sub":"x","__proto__":{"admin":true,"exp":1},"constructor":{"prototype":{"admin":true}}}'
    const { payload: claims } = hs.verify(resignHs(H, b64u(payload), SECRET))
    assert.equal(claims.sub, 'x')
    assert.equal(claims.admin, undefined)
    assert.equal(claims.exp, undefined, 'no exp inherited, and none refused')
    assert.equal(Object.getPrototypeOf(claims), Object.prototype)
    assert.equal(({} as Record<string, unknown>).admin, undefined)
    assert.equal((Object.prototype as Record<string, unknown>).admin, undefined)
  })

  it('__proto__ in the header supplies no alg and no kid', () => {
    throwsCode(() => hs.verify(resignHs(b64u(`{"__proto__":{"alg":"HS256","kid":"${K}"}}`), P, SECRET)), 'ERR_TOKEN_ALG', 'The header has no "alg"')
    const r = hs.verify(resignHs(b64u(`{"alg":"HS256","__proto__":{"kid":"${K_OTHER}"}}`), P, SECRET))
    assert.deepEqual([r.kid, r.state], [K, 'current'])
  })
})

describe('signatures', () => {
  /** The other base64url characters that decode to the same bytes at the end of a segment. */
  function trailingVariants(sig: string, unusedBits: number): string[] {
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'
    const last = alphabet.indexOf(sig.at(-1) ?? '')
    const base = last & ~((1 << unusedBits) - 1)
    const out: string[] = []
    for (let i = 0; i < 1 << unusedBits; i++) if (base + i !== last) out.push(sig.slice(0, -1) + alphabet[base + i])
    return out
  }

  for (const [name, ring, token, bits] of [
    ['HS256 (43 chars, 2 spare bits)', hs, valid, 2],
    ['ES256 (86 chars, 4 spare bits)', esRing, esRing.sign({ sub: 'e' }), 4],
    ['EdDSA (86 chars, 4 spare bits)', edRing, edRing.sign({ sub: 'e' }), 4],
  ] as const) {
    it(`${name}: other trailing bits, same bytes, refused`, () => {
      const [h, p, s] = token.split('.') as [string, string, string]
      const variants = trailingVariants(s, bits)
      assert.equal(variants.length, (1 << bits) - 1)
      for (const v of variants) {
        assert.deepEqual(Buffer.from(v, 'base64url'), Buffer.from(s, 'base64url'), 'the variant decodes to the same signature bytes')
        throwsCode(() => ring.verify(`${h}.${p}.${v}`), 'ERR_TOKEN_SIGNATURE', 'The token signature is invalid')
      }
    })

    it(`${name}: truncated, extended, swapped`, () => {
      const [h, p, s] = token.split('.') as [string, string, string]
      for (const cut of [s.slice(0, -1), s.slice(0, -4), s.slice(0, s.length / 2), s.slice(0, 1), `${s}A`, `${s}AAAA`]) {
        throwsCode(() => ring.verify(`${h}.${p}.${cut}`), 'ERR_TOKEN_SIGNATURE', 'The token signature is invalid')
      }
      const other = ring.sign({ sub: 'other' }).split('.')
      throwsCode(() => ring.verify(`${h}.${p}.${other[2]}`), 'ERR_TOKEN_SIGNATURE')
      throwsCode(() => ring.verify(`${h}.${other[1]}.${s}`), 'ERR_TOKEN_SIGNATURE')
    })
  }

  it('a forged payload under a genuine header and signature', () => {
    throwsCode(() => hs.verify(`${H}.${b64u({ sub: 'victim', role: 'admin' })}.${S}`), 'ERR_TOKEN_SIGNATURE')
  })

  it('an HMAC under an empty or short key is never accepted', () => {
    for (const key of ['', '\u0000', 'a']) {
      throwsCode(() => hs.verify(forgeHs({ alg: 'HS256', kid: K }, { sub: 'x' }, key)), 'ERR_TOKEN_SIGNATURE')
      throwsCode(() => hs.verify(forgeHs({ alg: 'HS256' }, { sub: 'x' }, key)), 'ERR_TOKEN_SIGNATURE')
    }
    assert.notEqual(hmac('HS256', '', 'x'), hmac('HS256', SECRET, 'x'))
  })
})

describe('arguments', () => {
  it('a non-string token is a TypeError', () => {
    for (const token of [undefined, null, 42, {}, Buffer.from(valid), new String(valid), [valid], { toString: () => valid }]) {
      assert.throws(() => hs.verify(token as string), { name: 'TypeError', message: 'token must be a string' })
    }
  })
})

describe('mutation fuzz', () => {
  const SEED = 0x5eed2025
  const CODES = new Set(Object.keys(ERRORS))
  const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'
  const EXOTIC = ['.', '+', '/', '=', ' ', '\n', '\u0000', '\u00ff', '\u2028', '\uD800', '\uD83D\uDD11', '"', '{', '}', '\\']
  const FRAGMENTS = ['{}', '[]', 'null', '{"alg":"none"}', `{"alg":"HS256","kid":"${K}"}`, '{"alg":"HS256","crit":["x"]}', '{"__proto__":{}}', '{"exp":"x"}', '"', '']

  it('every mutation of a valid token is refused with a catalog code, never another exception', () => {
    const random = seededRandom(SEED)
    const int = (n: number): number => Math.floor(random() * n)
    const pick = <T>(list: readonly T[]): T => list[int(list.length)] as T
    const char = (): string => (random() < 0.8 ? ALPHABET[int(64)] as string : pick(EXOTIC))
    const mutations: ReadonlyArray<(t: string) => string> = [
      (t) => { const i = int(t.length); return t.slice(0, i) + char() + t.slice(i + 1) }, // flip
      (t) => { const i = int(t.length + 1); return t.slice(0, i) + char() + t.slice(i) }, // insert
      (t) => { const i = int(t.length); return t.slice(0, i) + t.slice(i + 1) }, // delete
      (t) => { const s = t.split('.'); const a = int(s.length); const b = int(s.length); [s[a], s[b]] = [s[b] as string, s[a] as string]; return s.join('.') }, // swap segments
      (t) => { const i = int(t.length); const n = 1 + int(8); return t.slice(0, i) + String.fromCharCode(...Array.from({ length: n }, () => int(256))) + t.slice(i + n) }, // random bytes
      (t) => t.slice(0, int(t.length)), // truncate
      (t) => { const s = t.split('.'); s[int(s.length)] = b64u(pick(FRAGMENTS)); return s.join('.') }, // replace a segment
      (t) => { const s = t.split('.'); return [...s, pick(s)].join('.') }, // duplicate a segment
    ]
    const tokens: ReadonlyArray<[string, Keyring, string]> = [
      ['HS256', hs, valid],
      ['HS256 kid-less', hs, forgeHs({ alg: 'HS256', typ: 'JWT' }, { sub: 'legacy', exp: 4_102_444_800 }, OTHER)],
      ['ES256', esRing, esRing.sign({ sub: 'e' })],
      ['EdDSA', edRing, edRing.sign({ sub: 'e' })],
    ]
    const ROUNDS = 5000
    const seen = new Map<string, number>()
    const started = performance.now()
    for (const [name, ring, token] of tokens) {
      for (let round = 0; round < ROUNDS; round++) {
        let mutated = token
        for (let n = 1 + int(3); n > 0; n--) mutated = pick(mutations)(mutated)
        try {
          ring.verify(mutated)
          assert.equal(mutated, token, `${name} round ${round} (seed ${SEED}): a changed token verified: ${JSON.stringify(mutated)}`)
          seen.set('verified', (seen.get('verified') ?? 0) + 1)
        } catch (err) {
          if (err instanceof assert.AssertionError) throw err
          assert.ok(isRekeyError(err), `${name} round ${round} (seed ${SEED}): ${String(err)} for ${JSON.stringify(mutated)}`)
          assert.ok(CODES.has(err.code), `unknown code ${err.code}`)
          seen.set(err.code, (seen.get(err.code) ?? 0) + 1)
        }
      }
    }
    assert.ok(performance.now() - started < 10_000, 'the fuzz loop stays within seconds (about 0.7 s on a laptop)')
    // The corpus reaches every stage: parsing, key lookup, algorithm, signature.
    for (const code of ['ERR_TOKEN_MALFORMED', 'ERR_TOKEN_SIGNATURE', 'ERR_KEY_UNKNOWN', 'ERR_TOKEN_ALG']) {
      assert.ok((seen.get(code) ?? 0) > 0, `no mutation reached ${code}: ${JSON.stringify([...seen])}`)
    }
  })
})
