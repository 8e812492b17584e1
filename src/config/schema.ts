/**
 * The one schema of the service's settings: each setting's environment variable, its key in
 * `rekey.config.json`, its CLI flag, its default and how its text is checked.
 *
 * Precedence: CLI flag > environment > config file > default. Secret settings are read from
 * the environment only, so they never end up in a committed file.
 */
import { MANAGED_ALGORITHMS } from '../core/algorithms.ts'
import { DEFAULT_POLICY, parseCadencePolicy, type CadencePolicy } from '../core/cadence.ts'
import { parseDuration } from '../core/duration.ts'
import { isRekeyError } from '../core/errors.ts'
import { decodeMasterKey } from './master-key.ts'
import type { SecretValue } from './secret-value.ts'

/** A value as it arrived: text from the environment or a flag, JSON from the file. */
export type RawValue = string | number | boolean | null | object

/** Thrown by a parser with the problem, in words that never repeat the value. */
export class SettingProblem extends Error {
  /** The message names the setting itself (`cadence "X" must be...`): only its source is put before it. */
  readonly namesSetting: boolean
  constructor(message: string, options: { namesSetting?: boolean } = {}) {
    super(message)
    this.namesSetting = options.namesSetting === true
  }
}

/** One setting of the schema. */
export interface SettingSpec {
  /** The path in the config object, e.g. `rateLimit.loginPerIp`. */
  readonly path: string
  readonly env?: string
  /** Read when `env` is unset or empty: a platform's conventional name (`PORT`). */
  readonly envFallback?: string
  /** The key in `rekey.config.json` (dotted for nested objects). Absent for secrets. */
  readonly file?: string
  /** The CLI flag that sets it (long name, without dashes). */
  readonly flag?: string
  readonly secret?: boolean
  readonly default?: unknown
  readonly doc: string
  readonly parse: (raw: RawValue) => unknown
}

function asText(raw: RawValue): string {
  if (typeof raw === 'string') return raw.trim()
  if (typeof raw === 'number' || typeof raw === 'boolean') return String(raw)
  throw new SettingProblem('must be a string or a number')
}

function duration(min: number, max = Number.MAX_SAFE_INTEGER) {
  return (raw: RawValue): number => {
    const seconds = parseDuration(typeof raw === 'number' ? raw : asText(raw))
    if (seconds === undefined) throw new SettingProblem('must be a duration such as 900, "30s", "15m", "1h" or "7d"')
    if (seconds < min || seconds > max) throw new SettingProblem(`must be between ${min} and ${max} seconds`)
    return seconds
  }
}

function integer(min: number, max: number) {
  return (raw: RawValue): number => {
    const text = asText(raw)
    const n = Number(text)
    if (!/^\d+$/.test(text) || !Number.isSafeInteger(n) || n < min || n > max) {
      throw new SettingProblem(`must be an integer from ${min} to ${max}`)
    }
    return n
  }
}

function oneOf<T extends string>(values: readonly T[]) {
  return (raw: RawValue): T => {
    // Case-insensitive, answering the canonical spelling (`eddsa` → `EdDSA`).
    const text = asText(raw).toLowerCase()
    const found = values.find((v) => v.toLowerCase() === text)
    if (found === undefined) throw new SettingProblem(`must be one of ${values.join(', ')}`)
    return found
  }
}

function nonEmpty(raw: RawValue): string {
  const text = asText(raw)
  if (text === '') throw new SettingProblem('must not be empty')
  return text
}

/** `true`/`false`, a hop count, or a comma-separated list of addresses and CIDRs, as Fastify's `trustProxy` takes. */
function trustProxy(raw: RawValue): boolean | number | string {
  if (typeof raw === 'boolean') return raw
  const text = asText(raw)
  if (/^(true|yes)$/i.test(text)) return true
  if (/^(false|0|no|)$/i.test(text)) return false
  // A number is a hop count, 1 included: `1` used to mean `true`, which trusts any client's claim.
  if (/^\d+$/.test(text)) return Number(text)
  if (/^[0-9a-f.:/,\s]+$/i.test(text)) return text
  throw new SettingProblem('must be true, false, a hop count, or a comma-separated list of addresses')
}

/** The master key: 32 bytes, base64 or base64url (decoded by the one master-key decoder). */
function masterKey(raw: RawValue): Buffer {
  try {
    return decodeMasterKey(asText(raw))
  } catch (err) {
    if (err instanceof RangeError) throw new SettingProblem(err.message)
    throw err
  }
}

function metricsToken(raw: RawValue): string {
  const text = asText(raw)
  if (text.length < 16) throw new SettingProblem('must be at least 16 characters (generate one with `rekey gen`)')
  return text
}

function webhookUrl(raw: RawValue): string {
  const text = asText(raw)
  let url: URL
  try {
    url = new URL(text)
  } catch {
    throw new SettingProblem('must be an http:// or https:// URL')
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new SettingProblem('must be an http:// or https:// URL')
  return text
}

/** The `cadence` object of the config file, checked by the same parser `rekey due` uses. */
function cadence(raw: RawValue): CadencePolicy {
  try {
    return parseCadencePolicy(raw, 'cadence')
  } catch (err) {
    if (!isRekeyError(err)) throw err
    throw new SettingProblem(err.problems.length > 0 ? err.problems.map((p) => p.replace(/^cadence: /, '')).join('; ') : err.message.replace(/^cadence: /, ''), { namesSetting: true })
  }
}

function postgresUrl(raw: RawValue): string {
  const text = asText(raw)
  if (!/^postgres(ql)?:\/\//i.test(text)) throw new SettingProblem('must be a postgres:// or postgresql:// URL')
  return text
}

function redisUrl(raw: RawValue): string {
  const text = asText(raw)
  let url: URL
  try {
    url = new URL(text)
  } catch {
    throw new SettingProblem('must be a redis:// or rediss:// URL')
  }
  if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') throw new SettingProblem('must be a redis:// or rediss:// URL')
  return text
}

/**
 * A share threshold: `5%` or `5` (percent); more than 0 and less than 100 %. Answers a fraction.
 * A bare number under 1 is refused: `0.5` may mean half a percent or half of all verifications,
 * and the wrong reading sets a threshold a hundred times too high.
 */
export function shareThreshold(raw: RawValue): number {
  const text = asText(raw)
  const m = /^(\d+(?:\.\d+)?)\s*(%?)$/.exec(text)
  if (m === null) throw new SettingProblem('must be a percentage such as 5%')
  const n = Number(m[1])
  if (m[2] === '' && n > 0 && n < 1) throw new SettingProblem(`is ambiguous without %: write ${m[1]}% or ${Number((n * 100).toPrecision(12))}%`)
  const fraction = n / 100
  if (!(fraction > 0 && fraction < 1)) throw new SettingProblem('must be more than 0% and less than 100%')
  return fraction
}

function audience(raw: RawValue): string {
  return nonEmpty(raw)
}

// The table with its literal types (`as const`), so that {@link SettingsConfig} can be derived
// from each entry's path, secrecy, default and parser.
const SETTING_TABLE = Object.freeze([
  { path: 'store', env: 'REKEY_STORE', file: 'store', flag: 'store', default: './.rekey/rekey.db', parse: nonEmpty,
    doc: 'SQLite file path or postgres:// URL.' },
  { path: 'storePoolSize', env: 'REKEY_STORE_POOL_SIZE', file: 'storePoolSize', default: 5, parse: integer(1, 1000),
    doc: 'PostgreSQL connections each instance pools (plus one LISTEN connection). 100 instances x (5 + 1) = 600: put the pool behind PgBouncer in transaction mode and set REKEY_STORE_LISTEN_URL.' },
  { path: 'storeListenUrl', env: 'REKEY_STORE_LISTEN_URL', secret: true, parse: postgresUrl,
    doc: 'A direct postgres:// URL for the one LISTEN connection (change notification), when REKEY_STORE goes through PgBouncer in transaction mode, which cannot LISTEN. Unset: REKEY_STORE.' },
  { path: 'port', env: 'REKEY_PORT', file: 'port', flag: 'port', default: 3000, parse: integer(0, 65535),
    // Heroku, Render, Railway, Fly and most platforms say where to listen with PORT.
    envFallback: 'PORT',
    doc: 'TCP port to listen on (0 picks a free one).' },
  { path: 'host', env: 'REKEY_HOST', file: 'host', flag: 'host', default: '127.0.0.1', parse: nonEmpty,
    doc: 'Address to listen on.' },
  { path: 'masterKey', env: 'REKEY_MASTER_KEY', secret: true, parse: masterKey,
    doc: '32 bytes, base64. Seals managed keys and refresh successors; keys the audit chain.' },
  { path: 'masterKeyPrev', env: 'REKEY_MASTER_KEY_PREV', secret: true, parse: masterKey,
    doc: 'The previous master key, during a master-key rotation only: sealed values open with either key.' },
  { path: 'scheduler.enabled', env: 'REKEY_SCHEDULER', file: 'scheduler.enabled', default: 'on', parse: oneOf(['on', 'off'] as const),
    doc: '`off` stops scheduled rotation, finalize and reminders on this instance.' },
  { path: 'scheduler.interval', env: 'REKEY_SCHEDULER_INTERVAL', file: 'scheduler.interval', default: 60, parse: duration(1, 86_400),
    doc: 'How often the scheduler checks what is due.' },
  { path: 'webhookUrl', env: 'REKEY_WEBHOOK_URL', secret: true, parse: webhookUrl,
    doc: 'Slack-compatible webhook for reminders and rotation notices; unset: none are sent.' },
  { path: 'cadence', file: 'cadence', default: DEFAULT_POLICY, parse: cadence,
    doc: 'Rotation cadence per secret name or `kind:KIND`, e.g. `{ "jwt-access": "30d", "kind:smtp": "365d" }`.' },
  { path: 'registration', env: 'REKEY_REGISTRATION', file: 'registration', default: 'open', parse: oneOf(['open', 'closed'] as const),
    doc: '`closed` answers 403 to POST /api/auth/register.' },
  { path: 'accessKeyAlg', env: 'REKEY_ACCESS_KEY_ALG', file: 'accessKeyAlg', parse: oneOf(MANAGED_ALGORITHMS),
    doc: 'Algorithm of new managed access keys. `EdDSA`, `ES256` or `RS256` publish their public keys at /.well-known/jwks.json, so other services verify without a shared secret. Unset: a rotation keeps the current key\'s algorithm (HS256 for the first key). Refresh keys are always HS256: only rekey reads them.' },
  { path: 'accessTokenTtl', env: 'JWT_EXPIRATION', file: 'accessTokenTtl', default: 900, parse: duration(10, 86_400),
    doc: 'Access token lifetime.' },
  { path: 'refreshTokenTtl', env: 'JWT_REFRESH_EXPIRATION', file: 'refreshTokenTtl', default: 604_800, parse: duration(60, 31_557_600),
    doc: 'Refresh token (session) lifetime, counted from login.' },
  { path: 'refreshOverlap', env: 'REKEY_REFRESH_OVERLAP', file: 'refreshOverlap', default: 10, parse: duration(0, 300),
    doc: 'How long a second use of a refresh token gets the same successor pair.' },
  { path: 'metricsToken', env: 'METRICS_AUTH_TOKEN', secret: true, parse: metricsToken,
    doc: 'Bearer token for GET /metrics; unset: /metrics answers 404.' },
  { path: 'trustProxy', env: 'REKEY_TRUST_PROXY', file: 'trustProxy', default: false, parse: trustProxy,
    doc: 'Trust X-Forwarded-For: a hop count (`1` behind one proxy: recommended), the proxies\' addresses/CIDRs, or `true` (any client can then choose its address: warned at start).' },
  { path: 'logLevel', env: 'REKEY_LOG_LEVEL', file: 'logLevel', default: 'info',
    parse: oneOf(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const), doc: 'pino log level.' },
  { path: 'issuer', env: 'REKEY_ISSUER', file: 'issuer', parse: nonEmpty, doc: '`iss` of access tokens, checked on verify.' },
  { path: 'audience', env: 'REKEY_AUDIENCE', file: 'audience', parse: audience, doc: '`aud` of access tokens, checked on verify.' },
  { path: 'rateLimit.window', env: 'REKEY_RATE_LIMIT_WINDOW', file: 'rateLimit.window', default: 60, parse: duration(1, 86_400),
    doc: 'The window every rate limit counts in.' },
  { path: 'rateLimit.max', env: 'REKEY_RATE_LIMIT_MAX', file: 'rateLimit.max', default: 600, parse: integer(1, 1_000_000),
    doc: 'Requests per client IP per window, all auth routes together except `/api/auth/me` (answered from memory).' },
  { path: 'rateLimit.loginPerIp', env: 'REKEY_RATE_LIMIT_LOGIN_IP', file: 'rateLimit.loginPerIp', default: 30, parse: integer(1, 1_000_000),
    doc: 'Login attempts per client IP per window.' },
  { path: 'rateLimit.loginPerAccount', env: 'REKEY_RATE_LIMIT_LOGIN_ACCOUNT', file: 'rateLimit.loginPerAccount', default: 10, parse: integer(1, 1_000_000),
    doc: 'Failed logins per (email, client address) before that pair waits: 1 s, then doubling up to REKEY_LOGIN_BACKOFF_MAX. Other addresses are not affected.' },
  { path: 'redisUrl', env: 'REKEY_REDIS_URL', secret: true, parse: redisUrl,
    doc: 'redis:// or rediss:// URL: rate limits and login backoff are shared by every instance. Unset: counted per instance. Redis down: limits fail open (warning, `rekey_limit_store_errors_total`).' },
  { path: 'redisPrefix', env: 'REKEY_REDIS_PREFIX', file: 'redisPrefix', default: 'rekey:', parse: nonEmpty,
    doc: 'Prefix of every Redis key rekey writes (one per deployment sharing a Redis).' },
  { path: 'rateLimit.loginBackoffMax', env: 'REKEY_LOGIN_BACKOFF_MAX', file: 'rateLimit.loginBackoffMax', default: 900, parse: duration(1, 86_400),
    doc: 'Longest wait the login backoff imposes on one (account, client address).' },
  { path: 'argon2.memoryCost', env: 'REKEY_ARGON2_MEMORY_KIB', file: 'argon2.memoryCost', default: 19_456, parse: integer(64, 4_194_304),
    doc: 'argon2id memory in KiB (OWASP: 19456). Lower only in tests.' },
  { path: 'argon2.timeCost', env: 'REKEY_ARGON2_TIME_COST', file: 'argon2.timeCost', default: 2, parse: integer(1, 20),
    doc: 'argon2id iterations (OWASP: 2).' },
  { path: 'argon2.parallelism', env: 'REKEY_ARGON2_PARALLELISM', file: 'argon2.parallelism', default: 1, parse: integer(1, 16),
    doc: 'argon2id lanes (OWASP: 1).' },
  { path: 'jwksMaxAge', env: 'REKEY_JWKS_MAX_AGE', file: 'jwksMaxAge', default: 300, parse: duration(0, 86_400),
    doc: '`Cache-Control: max-age` of /.well-known/jwks.json, and the publication delay: a staged asymmetric access key is published this long before it signs (`rotate --publish-delay` overrides it per rotation).' },
  { path: 'finalizeWhenShareBelow', env: 'REKEY_FINALIZE_WHEN_SHARE_BELOW', file: 'finalizeWhenShareBelow', parse: shareThreshold,
    doc: 'The scheduler finalizes before the grace window ends once the old key\'s share of verifications, across every reporting process, has stayed below this (e.g. `5%`) for 15 minutes. Unset: only the time rule.' },
] as const satisfies readonly SettingSpec[])

/**
 * Every setting. `docs/configuration.md` mirrors this table, and `RekeyConfig` is derived from
 * it ({@link SettingsConfig}).
 */
export const SETTINGS: readonly SettingSpec[] = SETTING_TABLE

/** One entry of the table, with its literal types. */
type Setting = (typeof SETTING_TABLE)[number]

/** What a setting's parser answers. */
type Parsed<S> = S extends { readonly parse: (raw: RawValue) => infer T } ? T : never

/**
 * The loaded value of a setting: a secret is wrapped in a `SecretValue`; a setting without a
 * default may be absent.
 */
type ValueOf<S> = S extends { readonly secret: true } ? SecretValue | undefined
  : S extends { readonly default: unknown } ? Parsed<S>
    : Parsed<S> | undefined

type Head<P extends string> = P extends `${infer H}.${string}` ? H : P
type Tail<P extends string, H extends string> = P extends `${H}.${infer T}` ? T : never

/**
 * The settings part of the loaded configuration, derived from {@link SETTINGS}: one field per
 * setting, a dotted path (`rateLimit.window`) nesting one level, so the table and the type
 * cannot drift.
 */
export type SettingsConfig = {
  readonly [H in Head<Setting['path']>]: H extends Setting['path']
    ? ValueOf<Extract<Setting, { readonly path: H }>>
    : Readonly<{ [S in Extract<Setting, { readonly path: `${H}.${string}` }> as Tail<S['path'], H>]: ValueOf<S> }>
}
