/**
 * Data keys from the environment, for the field cipher (`rekey/crypt`):
 *   ENCRYPTION_KEY (+ ENCRYPTION_KEY_PREV)   or   ENCRYPTION_KEYS (a JWK list, like JWT_KEYS).
 * Setting both conventions is a contradiction, reported rather than guessed. Never throws:
 * problems are gathered for one `ERR_CONFIG`, and no message carries a key.
 */
import { createSecretKey, hkdfSync, type KeyObject } from 'node:crypto'
import type { Env } from './env.ts'
import { MIN_SECRET_BYTES } from './key.ts'
import { deriveKid } from './kid.ts'
import { isKeyState, type KeyState } from './states.ts'

/** The purpose of managed data keys in rekey's store (`keys.purpose`). */
export const DATA_KEY_PURPOSE = 'data'
/** Their algorithm: AES-256-GCM, the cipher of `rekey/crypt`. */
export const DATA_KEY_ALG = 'A256GCM'

/** How the instance id of a `Cipher.fromStore` process starts: it encrypts, it verifies no token. */
export const CIPHER_INSTANCE_PREFIX = 'cipher:'

/** AES-256: the one key size the cipher uses. */
export const DATA_KEY_BYTES = 32

/** One data key as the cipher holds it. The AES key stays a KeyObject (not printable). */
export interface DataKey {
  readonly kid: string
  readonly state: KeyState
  readonly key: KeyObject
  /** Where it came from (`ENCRYPTION_KEY`, `ENCRYPTION_KEYS[1]`), for messages. */
  readonly label: string
}

/** What the environment says: the keys, and every problem found. */
export interface EnvDataKeys {
  readonly keys: DataKey[]
  readonly problems: string[]
  /** Secrets under 32 bytes that were refused (`ERR_WEAK_SECRET` when they are the only problems). */
  readonly weakProblems: string[]
  /** Secrets under 32 bytes that were accepted because REKEY_ALLOW_WEAK_SECRETS=1. */
  readonly weak: string[]
}

const KID = /^[A-Za-z0-9_-]{1,64}$/
const HEX_KEY = /^[0-9a-fA-F]{64}$/
const B64_KEY = /^[A-Za-z0-9+/_-]{43}=?$/
// Domain separation: a text secret is never used directly as an AES key.
const HKDF_INFO = 'rekey/crypt/aes-256-gcm/v1'

function value(env: Env, name: string): string | undefined {
  const v = env[name]
  return v === undefined || v === '' ? undefined : v
}

/**
 * The AES key of a secret written as text: 64 hex digits or base64 of 32 bytes (what
 * `rekey gen` and `openssl rand -hex 32` print) are the key itself; any other text of at
 * least 32 bytes is stretched with HKDF-SHA-256.
 */
export function aesKeyOfText(text: string): Buffer {
  if (HEX_KEY.test(text)) return Buffer.from(text, 'hex')
  if (B64_KEY.test(text)) {
    const raw = Buffer.from(text.replaceAll('+', '-').replaceAll('/', '_').replace(/=$/, ''), 'base64url')
    if (raw.length === DATA_KEY_BYTES) return raw
  }
  return Buffer.from(hkdfSync('sha256', Buffer.from(text, 'utf8'), Buffer.alloc(0), HKDF_INFO, DATA_KEY_BYTES))
}

/** The kid of a text secret: the same derivation (and so the same kid) `rekey status` shows for the variable. */
export function kidOfText(text: string): string {
  return deriveKid(createSecretKey(Buffer.from(text, 'utf8')))
}

function textKey(env: Env, name: string, state: KeyState, weakProblems: string[], weak: string[], allowWeak: boolean): DataKey | undefined {
  const text = value(env, name) as string
  if (Buffer.byteLength(text, 'utf8') < MIN_SECRET_BYTES) {
    if (!allowWeak) {
      weakProblems.push(`${name}: the key is ${Buffer.byteLength(text, 'utf8')} bytes; at least ${MIN_SECRET_BYTES} are required (generate one with \`rekey gen\`)`)
      return undefined
    }
    weak.push(name)
  }
  return { kid: kidOfText(text), state, key: createSecretKey(aesKeyOfText(text)), label: name }
}

function jwkKeys(raw: string, problems: string[]): DataKey[] {
  let parsed: unknown
  try {
    parsed = JSON.parse(raw)
  } catch {
    problems.push('ENCRYPTION_KEYS is not valid JSON')
    return []
  }
  const list = Array.isArray(parsed) ? parsed : (parsed as { keys?: unknown } | null)?.keys
  if (!Array.isArray(list) || list.length === 0) {
    problems.push('ENCRYPTION_KEYS must be a non-empty array of JWKs or { "keys": [...] }')
    return []
  }
  const keys: DataKey[] = []
  list.forEach((jwk: unknown, i) => {
    const label = `ENCRYPTION_KEYS[${i}]`
    if (typeof jwk !== 'object' || jwk === null) {
      problems.push(`${label} is not an object`)
      return
    }
    const { kty, kid, k, alg, status } = jwk as Record<string, unknown>
    if (kty !== 'oct') return void problems.push(`${label}: kty must be "oct"`)
    if (alg !== undefined && alg !== 'A256GCM') return void problems.push(`${label}: alg must be "A256GCM"`)
    if (typeof kid !== 'string' || !KID.test(kid)) return void problems.push(`${label}: kid must be 1 to 64 characters of A-Z a-z 0-9 _ -`)
    if (status !== undefined && !isKeyState(status)) return void problems.push(`${label}: unknown status (use next, current, previous, retired or revoked)`)
    const bytes = typeof k === 'string' && /^[A-Za-z0-9_-]+$/.test(k) ? Buffer.from(k, 'base64url') : undefined
    if (bytes?.length !== DATA_KEY_BYTES) return void problems.push(`${label}: k must be ${DATA_KEY_BYTES} bytes in base64url`)
    keys.push({ kid, state: status ?? (i === 0 ? 'current' : 'previous'), key: createSecretKey(bytes), label })
  })
  const kids = keys.map((key) => key.kid)
  const twice = kids.filter((kid, i) => kids.indexOf(kid) !== i)
  if (twice.length > 0) problems.push(`ENCRYPTION_KEYS: kid ${[...new Set(twice)].join(', ')} is used twice`)
  const current = keys.filter((key) => key.state === 'current')
  if (keys.length > 0 && current.length !== 1) problems.push(`ENCRYPTION_KEYS must hold exactly one key with status "current" (found ${current.length})`)
  return keys
}

/** Reads the data keys. Never throws. */
export function readDataKeys(env: Env): EnvDataKeys {
  const problems: string[] = []
  const weakProblems: string[] = []
  const weak: string[] = []
  const allowWeak = value(env, 'REKEY_ALLOW_WEAK_SECRETS') === '1'
  const pair = value(env, 'ENCRYPTION_KEY') !== undefined || value(env, 'ENCRYPTION_KEY_PREV') !== undefined
  const list = value(env, 'ENCRYPTION_KEYS')
  if (pair && list !== undefined) {
    problems.push('ENCRYPTION_KEYS and ENCRYPTION_KEY / ENCRYPTION_KEY_PREV are set together: keep one convention')
  }
  if (list !== undefined) return { keys: jwkKeys(list, problems), problems, weakProblems, weak }
  if (value(env, 'ENCRYPTION_KEY') === undefined) {
    problems.push(value(env, 'ENCRYPTION_KEY_PREV') === undefined
      ? 'ENCRYPTION_KEY is not set (generate one with `rekey gen`)'
      : 'ENCRYPTION_KEY_PREV is set but ENCRYPTION_KEY is not')
    return { keys: [], problems, weakProblems, weak }
  }
  const keys: DataKey[] = []
  const current = textKey(env, 'ENCRYPTION_KEY', 'current', weakProblems, weak, allowWeak)
  if (current !== undefined) keys.push(current)
  if (value(env, 'ENCRYPTION_KEY_PREV') !== undefined && value(env, 'ENCRYPTION_KEY_PREV') !== value(env, 'ENCRYPTION_KEY')) {
    const previous = textKey(env, 'ENCRYPTION_KEY_PREV', 'previous', weakProblems, weak, allowWeak)
    if (previous !== undefined) keys.push(previous)
  }
  return { keys, problems, weakProblems, weak }
}
