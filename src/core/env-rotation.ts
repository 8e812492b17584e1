/**
 * The env-file runbooks as rules: what rotate, finalize and rollback change in a set of
 * variables, and when finalize is safe. Pure: the caller reads and writes the file.
 *
 * A secret lives in a "pair" (`VAR` signs, `VAR_PREV` verifies, `VAR_ROTATED_AT` dates the
 * rotation; any variable name fits, see {@link pairLayout}) or, for the generic JWT secret,
 * in the dual-key runbook's `JWT_SECRET_CURRENT` / `JWT_SECRET_NEW` / `JWT_SECRET_ROTATION_DATE`
 * ("staged"), which finalize collapses back to `JWT_SECRET`.
 */
import { parseDuration } from './duration.ts'
import { DEFAULT_EXPIRES_IN, readEnvKeys } from './env.ts'
import { RekeyError } from './errors.ts'

/** Which secret of an env file: the generic JWT key, the access / refresh keys, or the data key (ENCRYPTION_KEY). */
export type EnvSecret = 'jwt' | 'access' | 'refresh' | 'data'

/** The two conventions of the generic JWT secret; `current-new` is the dual-key runbook's. */
export type EnvConvention = 'pair' | 'current-new'

/** The variables one secret uses in a file. */
export interface EnvLayout {
  readonly secret: EnvSecret
  /** `pair`: SIGN + SIGN_PREV (+ SIGN_ROTATED_AT); `staged`: JWT_SECRET_CURRENT/NEW/ROTATION_DATE. */
  readonly convention: 'pair' | 'staged'
  /** For `staged`: the variable the steady state keeps (JWT_SECRET), which rotate moves out. */
  readonly restVar?: string
  readonly signVar: string
  readonly verifyVar: string
  readonly dateVar: string
  /** The variables that may give the token lifetime, first found wins. */
  readonly lifetimeVars: readonly string[]
  /** The lifetime assumed when none is known, seconds. */
  readonly assumedLifetime: number
  /** The keyring purpose this secret signs for. */
  readonly purpose: 'access' | 'refresh'
}

/** A change to apply to the file, and what to tell the operator and the audit log. */
export interface EnvPlan {
  readonly set: Record<string, string>
  readonly remove: readonly string[]
  readonly method: string
  readonly notes: string
  /** The secret that signs once the change is written (to check the file as read back). */
  readonly signing?: string
  /** Secrets that stop verifying with this change (retired or revoked). */
  readonly dropped?: readonly string[]
}

/** Seconds added to the token lifetime before finalize is safe, for clocks that disagree. Default 60. */
export const DEFAULT_SKEW_SECONDS = 60

/**
 * The access-token lifetime assumed in env-file mode when the app's is unknown: 86 400 s
 * (24 hours), the longest in common runbooks. rekey cannot see the app's `expiresIn`, and
 * guessing short cuts users whose tokens are still valid.
 */
export const ASSUMED_ACCESS_LIFETIME = 86_400

type Vars = Readonly<Record<string, string | undefined>>

const has = (vars: Vars, name: string): boolean => vars[name] !== undefined && vars[name] !== ''

/**
 * A pair of variables for any secret: `name` signs (or encrypts), `name_PREV` verifies
 * (or decrypts) until finalize, `name_ROTATED_AT` records the rotation.
 */
export function pairLayout(name: string, options: { secret?: EnvSecret, lifetimeVars?: readonly string[], assumedLifetime?: number, purpose?: 'access' | 'refresh' } = {}): EnvLayout {
  return {
    secret: options.secret ?? 'jwt', convention: 'pair', signVar: name, verifyVar: `${name}_PREV`, dateVar: `${name}_ROTATED_AT`,
    lifetimeVars: options.lifetimeVars ?? [], assumedLifetime: options.assumedLifetime ?? 0, purpose: options.purpose ?? 'access',
  }
}

const STAGED_VARS = ['JWT_SECRET_CURRENT', 'JWT_SECRET_NEW', 'JWT_SECRET_ROTATION_DATE'] as const
const GENERIC_VARS = ['JWT_SECRET', 'JWT_SECRET_PREV', 'JWT_SECRET_ROTATED_AT', ...STAGED_VARS] as const

/** Every variable rekey may rewrite for a JWT secret: each must be assigned at most once. */
export const MANAGED_ENV_VARS: readonly string[] = Object.freeze([
  ...GENERIC_VARS,
  ...['JWT_ACCESS_SECRET', 'JWT_REFRESH_SECRET'].flatMap((n) => [n, `${n}_PREV`, `${n}_ROTATED_AT`]),
  'JWT_EXPIRATION', 'JWT_ACCESS_EXPIRATION', 'JWT_REFRESH_EXPIRATION', 'JWT_KEYS',
  'ENCRYPTION_KEY', 'ENCRYPTION_KEY_PREV', 'ENCRYPTION_KEY_ROTATED_AT',
])

/**
 * Refuses (`ERR_CONFIG`, the keyring's own message) a file that mixes conventions, such as
 * `JWT_SECRET` beside `JWT_SECRET_CURRENT`: the app would refuse to start on it, and any
 * rewrite would be a guess.
 */
export function assertOneConvention(vars: Vars): void {
  // Only contradictions between conventions: a lone _PREV (a half-finished finalize) is what finalize repairs.
  const problems = readEnvKeys(vars, 'access').problems.filter((p) => /set together/.test(p))
  if (problems.length > 0) throw new RekeyError('ERR_CONFIG', `Invalid access key configuration: ${problems.join('; ')}`, { problems })
}

/** True when the file uses the dual-key runbook's variables. */
const usesStaged = (vars: Vars): boolean => STAGED_VARS.some((n) => has(vars, n))

/** Finds which variables hold the given secret in this file. */
export function envLayout(vars: Vars, secret: EnvSecret = 'jwt', convention?: EnvConvention): EnvLayout {
  // The data key rotates like a JWT pair; its finalize is judged on counted values, not on a token lifetime.
  if (secret === 'data') return pairLayout('ENCRYPTION_KEY', { secret: 'data' })
  // A JWK list cannot be rotated by adding a JWT_SECRET or JWT_ACCESS_SECRET beside it: the
  // keyring refuses the mix (the app would not start) or the new variable takes precedence.
  if (has(vars, 'JWT_KEYS')) {
    throw new RekeyError('ERR_CONFIG', 'This file keeps its keys in JWT_KEYS (a JWK list): env-file rotation does not rewrite JWK lists; add the new key to the list with "status":"next", then make it current (docs/keyring.md), or let rekey manage the keys (rekey serve)')
  }
  const generic = GENERIC_VARS.some((n) => has(vars, n))
  // The keyring reads JWT_ACCESS_SECRET first and falls back to the generic secret: `--secret
  // access` on a JWT_SECRET file means JWT_SECRET, never a new JWT_ACCESS_SECRET that would
  // silently take precedence and log everyone out.
  const accessOwn = has(vars, 'JWT_ACCESS_SECRET') || has(vars, 'JWT_ACCESS_SECRET_PREV')
  if (secret === 'refresh' || (secret === 'access' && (accessOwn || !generic))) {
    const base = secret === 'access' ? 'JWT_ACCESS_SECRET' : 'JWT_REFRESH_SECRET'
    return pairLayout(base, {
      secret,
      lifetimeVars: secret === 'access' ? ['JWT_ACCESS_EXPIRATION', 'JWT_EXPIRATION'] : ['JWT_REFRESH_EXPIRATION'],
      assumedLifetime: secret === 'access' ? ASSUMED_ACCESS_LIFETIME : DEFAULT_EXPIRES_IN.refresh,
      purpose: secret,
    })
  }
  if (secret === 'jwt' && !generic && (has(vars, 'JWT_ACCESS_SECRET') || has(vars, 'JWT_REFRESH_SECRET'))) {
    throw new RekeyError('ERR_CONFIG', 'This file uses JWT_ACCESS_SECRET / JWT_REFRESH_SECRET: name one with --secret access, --secret refresh or --secret all')
  }
  const lifetimeVars = ['JWT_EXPIRATION', 'JWT_ACCESS_EXPIRATION']
  if (usesStaged(vars) || convention === 'current-new') {
    return {
      secret: 'jwt', convention: 'staged', restVar: 'JWT_SECRET', signVar: 'JWT_SECRET_NEW', verifyVar: 'JWT_SECRET_CURRENT', dateVar: 'JWT_SECRET_ROTATION_DATE',
      lifetimeVars, assumedLifetime: ASSUMED_ACCESS_LIFETIME, purpose: 'access',
    }
  }
  return pairLayout('JWT_SECRET', { secret: 'jwt', lifetimeVars, assumedLifetime: ASSUMED_ACCESS_LIFETIME })
}

/** The secret that signs now, whichever convention the file uses. */
export function signingSecret(vars: Vars, layout: EnvLayout): string | undefined {
  if (layout.convention === 'staged') {
    if (has(vars, 'JWT_SECRET_NEW')) return vars.JWT_SECRET_NEW
    if (has(vars, 'JWT_SECRET_CURRENT')) return vars.JWT_SECRET_CURRENT
    return has(vars, 'JWT_SECRET') ? vars.JWT_SECRET : undefined
  }
  return has(vars, layout.signVar) ? vars[layout.signVar] : undefined
}

/** The variable the signing secret is in. */
export function signingVar(vars: Vars, layout: EnvLayout): string {
  if (layout.convention !== 'staged') return layout.signVar
  return has(vars, 'JWT_SECRET_NEW') ? 'JWT_SECRET_NEW' : has(vars, 'JWT_SECRET_CURRENT') ? 'JWT_SECRET_CURRENT' : 'JWT_SECRET'
}

/** True while an old key still verifies beside the signing one. */
export function inGrace(vars: Vars, layout: EnvLayout): boolean {
  return layout.convention === 'staged' ? has(vars, 'JWT_SECRET_NEW') && has(vars, 'JWT_SECRET_CURRENT') : has(vars, layout.verifyVar)
}

/** A token lifetime and where it came from, for finalize and for what rekey prints. */
export interface TokenLifetime {
  readonly seconds: number
  /** `--token-lifetime`, `JWT_EXPIRATION in .env`, `JWT_EXPIRATION in the environment`, or `assumed: ...`. */
  readonly source: string
  readonly assumed: boolean
}

/** Named in a lifetime's source when refresh tokens share the access secret (see {@link tokenLifetimeOf}). */
const REFRESH_SHARED = 'refresh tokens are signed with JWT_SECRET too'

/**
 * The lifetime of tokens signed by this secret: `--token-lifetime`, then the file's
 * lifetime variable, then the process environment's, else the assumed one (24 hours for
 * access tokens, 7 days for refresh tokens). When the app signs its refresh tokens with
 * `JWT_SECRET` too (`JWT_REFRESH_EXPIRATION` set, no `JWT_REFRESH_SECRET`), the longer of the
 * two lifetimes: finalize must not cut refresh tokens the old key signed.
 */
export function tokenLifetimeOf(layout: EnvLayout, fileVars: Vars, processEnv: Vars = {}, flag?: string, fileName = 'the file'): TokenLifetime {
  const access = ownLifetimeOf(layout, fileVars, processEnv, flag, fileName)
  if (layout.secret !== 'jwt' || has(fileVars, 'JWT_REFRESH_SECRET') || has(processEnv, 'JWT_REFRESH_SECRET')) return access
  const refresh = ownLifetimeOf({ ...layout, lifetimeVars: ['JWT_REFRESH_EXPIRATION'] }, fileVars, processEnv, undefined, fileName)
  if (refresh.assumed || refresh.seconds <= access.seconds) return access
  return { seconds: refresh.seconds, source: `${refresh.source}: ${REFRESH_SHARED} (no JWT_REFRESH_SECRET), and outlive access tokens (${access.source})`, assumed: false }
}

/** The lifetime named for this layout's own tokens, by the precedence above. */
function ownLifetimeOf(layout: EnvLayout, fileVars: Vars, processEnv: Vars, flag: string | undefined, fileName: string): TokenLifetime {
  if (flag !== undefined) {
    const seconds = parseDuration(flag)
    if (seconds === undefined || seconds <= 0) throw new RekeyError('ERR_CONFIG', '--token-lifetime must be a positive duration such as 900, "15m" or "1h"')
    return { seconds, source: '--token-lifetime', assumed: false }
  }
  for (const [vars, where] of [[fileVars, `in ${fileName}`], [processEnv, 'in the environment']] as const) {
    for (const name of layout.lifetimeVars) {
      if (!has(vars, name)) continue
      const seconds = parseDuration(vars[name] as string)
      if (seconds === undefined || seconds <= 0) throw new RekeyError('ERR_CONFIG', `${name} ${where} must be a positive duration such as 900, "15m" or "1h"`)
      return { seconds, source: `${name} ${where}`, assumed: false }
    }
  }
  const names = layout.lifetimeVars.join(' / ') || 'lifetime variable'
  return { seconds: layout.assumedLifetime, source: `assumed: no ${names} in ${fileName} or the environment, and no --token-lifetime`, assumed: true }
}

/** When the old key may be removed: the rotation date plus the token lifetime plus skew. Undefined when unknown. */
export function finalizeSafeAt(vars: Vars, layout: EnvLayout, lifetime: TokenLifetime, skewSeconds = DEFAULT_SKEW_SECONDS): Date | undefined {
  if (layout.secret === 'data') return undefined
  const date = vars[layout.dateVar]
  if (date === undefined || date === '') return undefined
  const at = Date.parse(date)
  if (Number.isNaN(at)) return undefined
  return new Date(at + (lifetime.seconds + skewSeconds) * 1000)
}

/** Rotation: the new secret signs and the old one verifies until finalize; `hard` drops the old one now. */
export function planRotate(vars: Vars, layout: EnvLayout, fresh: string, now: Date, hard: boolean, lifetime?: TokenLifetime): EnvPlan {
  const old = signingSecret(vars, layout)
  const date = now.toISOString()
  if (old === undefined) {
    const target = layout.convention === 'staged' ? 'JWT_SECRET_CURRENT' : layout.signVar
    return { set: { [target]: fresh }, remove: [], method: 'rotate (initial key)', notes: `${target} was empty; a first key was set`, signing: fresh }
  }
  if (hard) {
    const dropped = [old, ...(inGrace(vars, layout) ? [vars[layout.verifyVar] as string] : [])]
    if (layout.convention === 'staged') {
      return { set: { JWT_SECRET: fresh }, remove: [...STAGED_VARS], method: 'rotate --hard', notes: 'old key dropped at once: every token it signed is refused (users sign in again)', signing: fresh, dropped }
    }
    const notes = layout.secret === 'data' ? 'old key dropped at once: a value it encrypted no longer decrypts' : 'old key dropped at once: every token it signed is refused (users sign in again)'
    return { set: { [layout.signVar]: fresh }, remove: [layout.verifyVar, layout.dateVar], method: 'rotate --hard', notes, signing: fresh, dropped }
  }
  if (inGrace(vars, layout)) {
    const safeAt = lifetime === undefined ? undefined : finalizeSafeAt(vars, layout, lifetime)
    throw new RekeyError('ERR_UNSAFE', `A rotation of ${layout.signVar} is still in its grace window${safeAt === undefined ? '' : ` (finalize is safe from ${safeAt.toISOString()})`}: run finalize first, or rotate --hard to cut the old key now`)
  }
  if (layout.convention === 'staged') {
    return {
      set: { JWT_SECRET_CURRENT: old, JWT_SECRET_NEW: fresh, JWT_SECRET_ROTATION_DATE: date },
      remove: has(vars, 'JWT_SECRET') ? ['JWT_SECRET'] : [],
      method: 'rotate', notes: 'JWT_SECRET_NEW signs; JWT_SECRET_CURRENT verifies until finalize', signing: fresh,
    }
  }
  const [uses, keeps] = layout.secret === 'data' ? ['encrypts', 'decrypts'] : ['signs', 'verifies']
  return { set: { [layout.signVar]: fresh, [layout.verifyVar]: old, [layout.dateVar]: date }, remove: [], method: 'rotate', notes: `${layout.signVar} ${uses}; ${layout.verifyVar} ${keeps} until finalize`, signing: fresh }
}

/** Finalize: the old key stops verifying, refused while its tokens may still be live unless forced. */
export function planFinalize(vars: Vars, layout: EnvLayout, now: Date, force: boolean, lifetime: TokenLifetime, skewSeconds = DEFAULT_SKEW_SECONDS): EnvPlan | undefined {
  if (!inGrace(vars, layout)) return undefined
  const safeAt = finalizeSafeAt(vars, layout, lifetime, skewSeconds)
  const assumed = lifetime.assumed ? ` (token lifetime ${lifetime.source}; it is ${Math.round(lifetime.seconds / 3600)} h: give --token-lifetime or set the lifetime variable if your app's is shorter)`
    : lifetime.source.includes(REFRESH_SHARED) ? ` (token lifetime ${lifetime.source})` : ''
  // The data key's evidence (no value of the old key left) is checked by the caller, which reads the counts.
  if (!force && layout.secret !== 'data') {
    if (safeAt === undefined) {
      throw new RekeyError('ERR_UNSAFE', `The rotation date of ${layout.signVar} is unknown (${layout.dateVar} is missing), so tokens signed by the old key may still be live: use --force once you know they have expired`)
    }
    if (now.getTime() < safeAt.getTime()) {
      throw new RekeyError('ERR_UNSAFE', `Tokens signed by the old key may be live until ${safeAt.toISOString()}${assumed}: finalize then, or use --force to cut them now`)
    }
  }
  // The data key has no window: the caller refused it while a counted value still needed the old key.
  const notes = layout.secret === 'data'
    ? force ? 'forced: a value of the old key no longer decrypts' : 'no registered column holds a value of the old key'
    : force && (safeAt === undefined || now.getTime() < safeAt.getTime()) ? 'forced before the grace window ended' : 'grace window over'
  const dropped = [vars[layout.verifyVar] as string]
  if (layout.convention === 'staged') {
    return { set: { JWT_SECRET: vars.JWT_SECRET_NEW as string }, remove: [...STAGED_VARS], method: force ? 'finalize --force' : 'finalize', notes, signing: vars.JWT_SECRET_NEW as string, dropped }
  }
  return { set: {}, remove: [layout.verifyVar, layout.dateVar], method: force ? 'finalize --force' : 'finalize', notes, signing: vars[layout.signVar] as string, dropped }
}

/** Rollback: the previous key signs again, the newer one verifies until finalize. */
export function planRollback(vars: Vars, layout: EnvLayout, now: Date): EnvPlan {
  if (!inGrace(vars, layout)) {
    throw new RekeyError('ERR_UNSAFE', `There is no previous key of ${layout.signVar} to roll back to (it was finalized or never set)`)
  }
  const signer = vars[layout.signVar] as string
  const previous = vars[layout.verifyVar] as string
  return {
    set: { [layout.signVar]: previous, [layout.verifyVar]: signer, [layout.dateVar]: now.toISOString() },
    remove: [],
    method: 'rollback',
    notes: layout.secret === 'data' ? 'the previous key encrypts again; the rolled-back key decrypts until finalize' : 'the previous key signs again; the rolled-back key verifies until finalize',
    signing: previous,
  }
}
