/**
 * Reading keys from the environment conventions teams already use.
 *
 * Precedence, per purpose:
 *   access:  JWT_ACCESS_SECRET (+ _PREV)  >  JWT_KEYS  |  JWT_SECRET_CURRENT/_NEW  |  JWT_SECRET (+ _PREV)
 *   refresh: JWT_REFRESH_SECRET (+ _PREV) only: a refresh key is never shared with access tokens.
 * Purpose-specific variables win over the generic ones. Among the generic ones, only one
 * convention may be set: two at once is a contradiction, reported rather than guessed.
 */
import { isAlgorithm, isSymmetric, type Algorithm } from './algorithms.ts'
import { parseDuration } from './duration.ts'
import type { KeyInput } from './key.ts'
import { isKeyState } from './states.ts'

/** Environment variables as `process.env` holds them. */
export type Env = Record<string, string | undefined>

/** Which keys to read: access tokens (the default) or refresh tokens. */
export type KeyPurpose = 'access' | 'refresh'

/** What the environment says: the keys, the token lifetime, and every problem found. */
export interface EnvKeys {
  keys: KeyInput[]
  /** Keys of conventions set beside the chosen one: checked for problems, never used. */
  extra: KeyInput[]
  /** Token lifetime in seconds (`JWT_EXPIRATION` or `JWT_REFRESH_EXPIRATION`). */
  expiresIn: number
  /** Which variables the keys came from, for messages and status. */
  source: string
  problems: string[]
  allowWeakSecrets: boolean
}

/** Default lifetimes: 15 minutes for access tokens, 7 days for refresh tokens. */
export const DEFAULT_EXPIRES_IN: Readonly<Record<KeyPurpose, number>> = Object.freeze({ access: 900, refresh: 604_800 })

function value(env: Env, name: string): string | undefined {
  const v = env[name]
  return v === undefined || v === '' ? undefined : v
}

function anySet(env: Env, names: readonly string[]): string[] {
  return names.filter((n) => value(env, n) !== undefined)
}

function algorithmOf(env: Env, problems: string[]): Algorithm {
  const alg = value(env, 'JWT_ALGORITHM')
  if (alg === undefined) return 'HS256'
  if (!isAlgorithm(alg) || !isSymmetric(alg)) {
    problems.push('JWT_ALGORITHM must be HS256, HS384 or HS512 for secrets from the environment')
    return 'HS256'
  }
  return alg
}

function pairKeys(env: Env, signVar: string, prevVar: string, alg: Algorithm, problems: string[]): KeyInput[] {
  const secret = value(env, signVar)
  const prev = value(env, prevVar)
  if (secret === undefined) {
    if (prev !== undefined) problems.push(`${prevVar} is set but ${signVar} is not`)
    return []
  }
  const keys: KeyInput[] = [{ secret, alg, state: 'current', label: signVar }]
  if (prev !== undefined && prev !== secret) keys.push({ secret: prev, alg, state: 'previous', label: prevVar })
  return keys
}

function rotationKeys(env: Env, alg: Algorithm, problems: string[]): KeyInput[] {
  const current = value(env, 'JWT_SECRET_CURRENT')
  const next = value(env, 'JWT_SECRET_NEW')
  const date = value(env, 'JWT_SECRET_ROTATION_DATE')
  let activatedAt: string | undefined
  if (date !== undefined) {
    const ms = Date.parse(date)
    const ymd = /^(\d{4})-(\d{2})-(\d{2})/.exec(date)
    // Date.parse rolls 2025-02-30 over to March 2: the calendar date must survive the round trip.
    const real = ymd !== null && !Number.isNaN(ms) && new Date(Date.UTC(Number(ymd[1]), Number(ymd[2]) - 1, Number(ymd[3]))).toISOString().startsWith(ymd[0])
    if (!real) problems.push('JWT_SECRET_ROTATION_DATE must be an ISO-8601 date')
    else activatedAt = new Date(ms).toISOString()
    if (next === undefined) problems.push('JWT_SECRET_ROTATION_DATE is set but JWT_SECRET_NEW is not')
  }
  if (next === undefined) return current === undefined ? [] : [{ secret: current, alg, state: 'current', label: 'JWT_SECRET_CURRENT' }]
  if (current === undefined) problems.push('JWT_SECRET_NEW is set but JWT_SECRET_CURRENT is not')
  const keys: KeyInput[] = [{ secret: next, alg, state: 'current', label: 'JWT_SECRET_NEW', ...(activatedAt === undefined ? {} : { activatedAt }) }]
  if (current !== undefined && current !== next) keys.push({ secret: current, alg, state: 'previous', label: 'JWT_SECRET_CURRENT' })
  return keys
}

function jwkKeys(raw: string, problems: string[]): KeyInput[] {
  let parsed: unknown
  try {
    parsed = JSON.parse(raw)
  } catch {
    problems.push('JWT_KEYS is not valid JSON')
    return []
  }
  const list = Array.isArray(parsed) ? parsed : (parsed as { keys?: unknown } | null)?.keys
  if (!Array.isArray(list) || list.length === 0) {
    problems.push('JWT_KEYS must be a non-empty array of JWKs or { "keys": [...] }')
    return []
  }
  const keys: KeyInput[] = []
  list.forEach((jwk: unknown, i) => {
    if (typeof jwk !== 'object' || jwk === null) {
      problems.push(`JWT_KEYS[${i}] is not an object`)
      return
    }
    const { status, kid, kty, alg } = jwk as Record<string, unknown>
    const missing = [['kid', kid], ['kty', kty], ['alg', alg]].filter(([, v]) => typeof v !== 'string').map(([n]) => n)
    if (missing.length > 0) {
      problems.push(`JWT_KEYS[${i}] needs ${missing.join(', ')}`)
      return
    }
    if (status !== undefined && !isKeyState(status)) {
      problems.push(`JWT_KEYS[${i}] has an unknown status (use next, current, previous, retired or revoked)`)
      return
    }
    // Without a status, the first key signs and the others verify only.
    const state = status ?? (i === 0 ? 'current' : 'previous')
    keys.push({ jwk: jwk as KeyInput['jwk'] & object, state, label: `JWT_KEYS[${i}]` })
  })
  return keys
}

function lifetime(env: Env, name: string, fallback: number, problems: string[]): number {
  const raw = value(env, name)
  if (raw === undefined) return fallback
  const seconds = parseDuration(raw)
  if (seconds === undefined || seconds === 0) {
    problems.push(`${name} must be a positive duration such as 900, "15m" or "1h"`)
    return fallback
  }
  return seconds
}

/** Reads the keys for one purpose. Never throws: problems are collected for one report. */
export function readEnvKeys(env: Env, purpose: KeyPurpose = 'access'): EnvKeys {
  const problems: string[] = []
  const alg = algorithmOf(env, problems)
  const allowWeakSecrets = value(env, 'REKEY_ALLOW_WEAK_SECRETS') === '1'
  let keys: KeyInput[] = []
  const extra: KeyInput[] = []
  let source = ''
  let expiresIn: number

  if (purpose === 'refresh') {
    expiresIn = lifetime(env, 'JWT_REFRESH_EXPIRATION', DEFAULT_EXPIRES_IN.refresh, problems)
    keys = pairKeys(env, 'JWT_REFRESH_SECRET', 'JWT_REFRESH_SECRET_PREV', alg, problems)
    source = 'JWT_REFRESH_SECRET'
    if (keys.length === 0 && !problems.some((p) => p.startsWith('JWT_REFRESH_SECRET_PREV'))) {
      problems.push('JWT_REFRESH_SECRET is not set (generate one with `rekey gen`)')
    }
  } else {
    expiresIn = lifetime(env, 'JWT_EXPIRATION', DEFAULT_EXPIRES_IN.access, problems)
    if (anySet(env, ['JWT_ACCESS_SECRET', 'JWT_ACCESS_SECRET_PREV']).length > 0) {
      keys = pairKeys(env, 'JWT_ACCESS_SECRET', 'JWT_ACCESS_SECRET_PREV', alg, problems)
      source = 'JWT_ACCESS_SECRET'
    } else {
      const conventions = [
        { name: 'JWT_KEYS', vars: ['JWT_KEYS'] },
        { name: 'JWT_SECRET_CURRENT/JWT_SECRET_NEW', vars: ['JWT_SECRET_CURRENT', 'JWT_SECRET_NEW', 'JWT_SECRET_ROTATION_DATE'] },
        { name: 'JWT_SECRET', vars: ['JWT_SECRET', 'JWT_SECRET_PREV'] },
      ].filter((c) => anySet(env, c.vars).length > 0)
      if (conventions.length > 1) {
        problems.push(`${conventions.map((c) => c.name).join(' and ')} are set together: keep one convention`)
      }
      const read = (name: string): KeyInput[] => name === 'JWT_KEYS'
        ? jwkKeys(value(env, 'JWT_KEYS') as string, problems)
        : name === 'JWT_SECRET' ? pairKeys(env, 'JWT_SECRET', 'JWT_SECRET_PREV', alg, problems) : rotationKeys(env, alg, problems)
      const [chosen, ...others] = conventions.map((c) => c.name)
      source = chosen ?? ''
      if (chosen === undefined) problems.push('no signing key: set JWT_SECRET (generate one with `rekey gen`), JWT_ACCESS_SECRET or JWT_KEYS')
      else keys = read(chosen)
      // The others are read too, so their own problems are reported in the same error.
      for (const other of others) extra.push(...read(other))
    }
  }
  return { keys, extra, expiresIn, source, problems, allowWeakSecrets }
}
