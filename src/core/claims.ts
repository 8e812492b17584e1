import { durationOption, type Duration } from './duration.ts'
import { RekeyError } from './errors.ts'

/** The JWT claims set of a verified token. */
export interface Claims {
  iss?: string
  sub?: string
  aud?: string | string[]
  exp?: number
  nbf?: number
  iat?: number
  jti?: string
  [claim: string]: unknown
}

/** Options of `keyring.verify`. */
export interface VerifyOptions {
  /** Accepted audiences: the token's `aud` must contain one of them. */
  audience?: string | readonly string[]
  /** Accepted issuers: the token's `iss` must equal one of them. */
  issuer?: string | readonly string[]
  /** The token's `sub` must equal this. */
  subject?: string
  /** Leeway for `exp`, `nbf` and `maxTokenAge`, in seconds or as text. Default 0. */
  clockTolerance?: Duration
  /** Refuse tokens whose `iat` is older than this (requires `iat`). */
  maxTokenAge?: Duration
  /** Claims that must be present. */
  requiredClaims?: readonly string[]
  /** The time to check against, in seconds since the epoch. Default: now. */
  currentDate?: Date
}

/** Verify options checked once: every field of the right type, durations in seconds. */
export interface ClaimRules {
  readonly audience: readonly string[] | undefined
  readonly issuer: readonly string[] | undefined
  readonly subject: string | undefined
  readonly tolerance: number
  readonly maxAge: number | undefined
  readonly required: readonly string[]
  readonly fixedNow: number | undefined
}

const NO_RULES: ClaimRules = Object.freeze({
  audience: undefined, issuer: undefined, subject: undefined, tolerance: 0, maxAge: undefined, required: [], fixedNow: undefined,
})

function stringList(name: string, value: unknown): readonly string[] | undefined {
  if (value === undefined) return undefined
  const list = typeof value === 'string' ? [value] : value
  if (!Array.isArray(list) || list.length === 0 || !list.every((v) => typeof v === 'string')) {
    throw new TypeError(`${name} must be a string or a non-empty array of strings`)
  }
  return Object.freeze([...list])
}

/** Checks verify options once; misuse throws `TypeError`. */
export function compileClaimRules(options: VerifyOptions | undefined): ClaimRules {
  if (options === undefined) return NO_RULES
  if (typeof options !== 'object' || options === null) throw new TypeError('verify options must be an object')
  const required = options.requiredClaims ?? []
  if (!Array.isArray(required) || !required.every((c) => typeof c === 'string')) {
    throw new TypeError('requiredClaims must be an array of claim names')
  }
  if (options.subject !== undefined && typeof options.subject !== 'string') throw new TypeError('subject must be a string')
  if (options.currentDate !== undefined && !(options.currentDate instanceof Date && Number.isFinite(options.currentDate.getTime()))) {
    throw new TypeError('currentDate must be a valid Date')
  }
  return Object.freeze({
    audience: stringList('audience', options.audience),
    issuer: stringList('issuer', options.issuer),
    subject: options.subject,
    tolerance: options.clockTolerance === undefined ? 0 : durationOption('clockTolerance', options.clockTolerance),
    maxAge: options.maxTokenAge === undefined ? undefined : durationOption('maxTokenAge', options.maxTokenAge),
    required: Object.freeze([...required]),
    fixedNow: options.currentDate === undefined ? undefined : Math.floor(options.currentDate.getTime() / 1000),
  })
}

function claimError(claim: string, message: string): RekeyError {
  return new RekeyError('ERR_TOKEN_CLAIM', message, { claim })
}

function numericDate(payload: Claims, claim: 'exp' | 'nbf' | 'iat'): number | undefined {
  const value = payload[claim]
  if (value === undefined) return undefined
  if (typeof value !== 'number' || !Number.isFinite(value)) throw claimError(claim, `"${claim}" must be a number`)
  return value
}

/** Applies the registered-claim rules to a payload whose signature has verified. */
export function checkClaims(payload: Claims, rules: ClaimRules): void {
  const now = rules.fixedNow ?? Math.floor(Date.now() / 1000)
  const tolerance = rules.tolerance
  const exp = numericDate(payload, 'exp')
  const nbf = numericDate(payload, 'nbf')
  const iat = numericDate(payload, 'iat')
  if (exp !== undefined && now - tolerance >= exp) {
    throw new RekeyError('ERR_TOKEN_EXPIRED', 'The token has expired', { claim: 'exp' })
  }
  if (nbf !== undefined && nbf > now + tolerance) {
    throw new RekeyError('ERR_TOKEN_NOT_YET_VALID', 'The token is not valid yet', { claim: 'nbf' })
  }
  if (rules === NO_RULES) return
  for (const claim of rules.required) {
    if (payload[claim] === undefined) throw claimError(claim, `The "${claim}" claim is required`)
  }
  if (rules.maxAge !== undefined) {
    if (iat === undefined) throw claimError('iat', 'The "iat" claim is required when maxTokenAge is set')
    if (iat > now + tolerance) throw new RekeyError('ERR_TOKEN_NOT_YET_VALID', 'The token was issued in the future', { claim: 'iat' })
    if (now - iat - tolerance > rules.maxAge) throw new RekeyError('ERR_TOKEN_EXPIRED', 'The token is older than maxTokenAge', { claim: 'iat' })
  }
  if (rules.issuer !== undefined) {
    if (typeof payload.iss !== 'string' || !rules.issuer.includes(payload.iss)) throw claimError('iss', 'Unexpected "iss" claim value')
  }
  if (rules.subject !== undefined && payload.sub !== rules.subject) throw claimError('sub', 'Unexpected "sub" claim value')
  if (rules.audience !== undefined) {
    const aud = payload.aud
    const ok = typeof aud === 'string'
      ? rules.audience.includes(aud)
      : Array.isArray(aud) && aud.some((a) => typeof a === 'string' && rules.audience!.includes(a))
    if (!ok) throw claimError('aud', 'Unexpected "aud" claim value')
  }
}
