/**
 * The env-file runbooks as rules: what rotate, finalize and rollback change in a set of
 * variables, and when finalize is safe. Pure: the caller reads and writes the file.
 */
import { parseDuration } from './duration.ts'
import { DEFAULT_EXPIRES_IN } from './env.ts'
import { RekeyError } from './errors.ts'

/** Which secret of an env file: the generic JWT key, the access / refresh keys, or the data key (ENCRYPTION_KEY). */
export type EnvSecret = 'jwt' | 'access' | 'refresh' | 'data'

/** The variables one secret uses in a file. */
export interface EnvLayout {
  readonly secret: EnvSecret
  /** `pair`: SIGN + SIGN_PREV (+ SIGN_ROTATED_AT); `staged`: JWT_SECRET_CURRENT/NEW/ROTATION_DATE. */
  readonly convention: 'pair' | 'staged'
  readonly signVar: string
  readonly verifyVar: string
  readonly dateVar: string
  readonly lifetimeVar: string
  readonly defaultLifetime: number
}

/** A change to apply to the file, and what to tell the operator and the audit log. */
export interface EnvPlan {
  readonly set: Record<string, string>
  readonly remove: readonly string[]
  readonly method: string
  readonly notes: string
}

/** Seconds added to the token lifetime before finalize is safe, for clocks that disagree. Default 60. */
export const DEFAULT_SKEW_SECONDS = 60

type Vars = Readonly<Record<string, string | undefined>>

const has = (vars: Vars, name: string): boolean => vars[name] !== undefined && vars[name] !== ''

/** Finds which variables hold the given secret in this file. */
export function envLayout(vars: Vars, secret: EnvSecret = 'jwt'): EnvLayout {
  // The data key rotates like a JWT pair; its finalize is judged on counted values, not on a token lifetime.
  if (secret === 'data') {
    return { secret, convention: 'pair', signVar: 'ENCRYPTION_KEY', verifyVar: 'ENCRYPTION_KEY_PREV', dateVar: 'ENCRYPTION_KEY_ROTATED_AT', lifetimeVar: 'ENCRYPTION_KEY_ROTATED_AT', defaultLifetime: 0 }
  }
  if (secret === 'access' || secret === 'refresh') {
    const base = secret === 'access' ? 'JWT_ACCESS_SECRET' : 'JWT_REFRESH_SECRET'
    return {
      secret, convention: 'pair', signVar: base, verifyVar: `${base}_PREV`, dateVar: `${base}_ROTATED_AT`,
      lifetimeVar: secret === 'access' ? 'JWT_EXPIRATION' : 'JWT_REFRESH_EXPIRATION', defaultLifetime: DEFAULT_EXPIRES_IN[secret],
    }
  }
  if (has(vars, 'JWT_SECRET_CURRENT') || has(vars, 'JWT_SECRET_NEW')) {
    return {
      secret, convention: 'staged', signVar: 'JWT_SECRET_NEW', verifyVar: 'JWT_SECRET_CURRENT', dateVar: 'JWT_SECRET_ROTATION_DATE',
      lifetimeVar: 'JWT_EXPIRATION', defaultLifetime: DEFAULT_EXPIRES_IN.access,
    }
  }
  if (!has(vars, 'JWT_SECRET') && (has(vars, 'JWT_ACCESS_SECRET') || has(vars, 'JWT_REFRESH_SECRET'))) {
    throw new RekeyError('ERR_CONFIG', 'This file uses JWT_ACCESS_SECRET / JWT_REFRESH_SECRET: name one with --secret access or --secret refresh')
  }
  return {
    secret, convention: 'pair', signVar: 'JWT_SECRET', verifyVar: 'JWT_SECRET_PREV', dateVar: 'JWT_SECRET_ROTATED_AT',
    lifetimeVar: 'JWT_EXPIRATION', defaultLifetime: DEFAULT_EXPIRES_IN.access,
  }
}

/** The secret that signs now, whichever convention the file uses. */
function signing(vars: Vars, layout: EnvLayout): string | undefined {
  if (layout.convention === 'staged') return has(vars, 'JWT_SECRET_NEW') ? vars.JWT_SECRET_NEW : vars.JWT_SECRET_CURRENT
  return has(vars, layout.signVar) ? vars[layout.signVar] : undefined
}

/** True while an old key still verifies beside the signing one. */
export function inGrace(vars: Vars, layout: EnvLayout): boolean {
  return layout.convention === 'staged' ? has(vars, 'JWT_SECRET_NEW') && has(vars, 'JWT_SECRET_CURRENT') : has(vars, layout.verifyVar)
}

/** When the old key may be removed: the rotation date plus the token lifetime plus skew. Undefined when unknown. */
export function finalizeSafeAt(vars: Vars, layout: EnvLayout, skewSeconds = DEFAULT_SKEW_SECONDS): Date | undefined {
  if (layout.secret === 'data') return undefined
  const date = vars[layout.dateVar]
  if (date === undefined || date === '') return undefined
  const at = Date.parse(date)
  if (Number.isNaN(at)) return undefined
  const lifetime = vars[layout.lifetimeVar] === undefined ? layout.defaultLifetime : parseDuration(vars[layout.lifetimeVar] as string) ?? layout.defaultLifetime
  return new Date(at + (lifetime + skewSeconds) * 1000)
}

/** Rotation: the new secret signs and the old one verifies until finalize; `hard` drops the old one now. */
export function planRotate(vars: Vars, layout: EnvLayout, fresh: string, now: Date, hard: boolean): EnvPlan {
  const old = signing(vars, layout)
  const date = now.toISOString()
  if (old === undefined) {
    return { set: { [layout.convention === 'staged' ? 'JWT_SECRET_CURRENT' : layout.signVar]: fresh }, remove: [], method: 'rotate (initial key)', notes: `${layout.signVar} was empty; a first key was set` }
  }
  if (hard) {
    const set = layout.convention === 'staged' ? { JWT_SECRET: fresh } : { [layout.signVar]: fresh }
    const remove = layout.convention === 'staged'
      ? ['JWT_SECRET_CURRENT', 'JWT_SECRET_NEW', 'JWT_SECRET_ROTATION_DATE']
      : [layout.verifyVar, layout.dateVar]
    return { set, remove, method: 'rotate --hard', notes: 'old key dropped at once: every token it signed is refused (users sign in again)' }
  }
  if (inGrace(vars, layout)) {
    const safeAt = finalizeSafeAt(vars, layout)
    throw new RekeyError('ERR_UNSAFE', `A rotation of ${layout.signVar} is still in its grace window${safeAt === undefined ? '' : ` (finalize is safe from ${safeAt.toISOString()})`}: run finalize first, or rotate --hard to cut the old key now`)
  }
  if (layout.convention === 'staged') {
    return { set: { JWT_SECRET_CURRENT: old, JWT_SECRET_NEW: fresh, JWT_SECRET_ROTATION_DATE: date }, remove: [], method: 'rotate', notes: 'JWT_SECRET_NEW signs; JWT_SECRET_CURRENT verifies until finalize' }
  }
  return { set: { [layout.signVar]: fresh, [layout.verifyVar]: old, [layout.dateVar]: date }, remove: [], method: 'rotate', notes: `${layout.signVar} signs; ${layout.verifyVar} verifies until finalize` }
}

/** Finalize: the old key stops verifying, refused while its tokens may still be live unless forced. */
export function planFinalize(vars: Vars, layout: EnvLayout, now: Date, force: boolean, skewSeconds = DEFAULT_SKEW_SECONDS): EnvPlan | undefined {
  if (!inGrace(vars, layout)) return undefined
  const safeAt = finalizeSafeAt(vars, layout, skewSeconds)
  // The data key's evidence (no value of the old key left) is checked by the caller, which reads the counts.
  if (!force && layout.secret !== 'data') {
    if (safeAt === undefined) {
      throw new RekeyError('ERR_UNSAFE', `The rotation date of ${layout.signVar} is unknown (${layout.dateVar} is missing), so tokens signed by the old key may still be live: use --force once you know they have expired`)
    }
    if (now.getTime() < safeAt.getTime()) {
      throw new RekeyError('ERR_UNSAFE', `Tokens signed by the old key may be live until ${safeAt.toISOString()}: finalize then, or use --force to cut them now`)
    }
  }
  const notes = force && (safeAt === undefined || now.getTime() < safeAt.getTime()) ? 'forced before the grace window ended' : 'grace window over'
  if (layout.convention === 'staged') {
    return { set: { JWT_SECRET: vars.JWT_SECRET_NEW as string }, remove: ['JWT_SECRET_CURRENT', 'JWT_SECRET_NEW', 'JWT_SECRET_ROTATION_DATE'], method: force ? 'finalize --force' : 'finalize', notes }
  }
  return { set: {}, remove: [layout.verifyVar, layout.dateVar], method: force ? 'finalize --force' : 'finalize', notes }
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
    notes: 'the previous key signs again; the rolled-back key verifies until finalize',
  }
}
