/**
 * The rotation rules of managed keys: what rotate, promote, finalize, rollback, revoke and
 * emergency may change, and when finalize is safe. Pure: keys, lifetimes, live-session counts
 * and `now` are inputs; the caller reads the store, generates key material and writes the
 * changes in one guarded transaction. Times are epoch milliseconds.
 *
 * The grace window of a demoted key is the token lifetime of its purpose plus a clock-skew
 * buffer, counted from demotion: it can never be shorter than the token lifetime. Several
 * keys may be `previous` at once, so two rotations in a row never cut a token that is still
 * valid: each previous key is retired only once its own window has passed.
 */
import { DEFAULT_SKEW_SECONDS } from './env-rotation.ts'
import { RekeyError } from './errors.ts'
import type { KeyState } from './states.ts'

/** Seconds added to a token lifetime for clocks that disagree (60), as in env-file mode. */
export { DEFAULT_SKEW_SECONDS }

/** What the rules read of a managed key (the store's key record fits it). */
export interface RuleKey {
  readonly kid: string
  readonly purpose: string
  readonly state: KeyState
  readonly createdAt: number
  readonly activatedAt: number | null
  readonly demotedAt: number | null
  readonly retireAfter: number | null
}

/** A change to one key: the store's key update. `expectState` guards it against a concurrent change. */
export interface KeyChange {
  readonly kid: string
  readonly expectState: KeyState
  readonly state: KeyState
  readonly activatedAt?: number | null
  readonly demotedAt?: number | null
  readonly retireAfter?: number | null
  readonly retiredAt?: number | null
  readonly revokedAt?: number | null
  readonly revokeReason?: string | null
}

/** Token lifetimes per purpose (seconds) and the skew buffer (seconds, default 60). */
export interface RotationPolicy {
  readonly lifetimes: Readonly<Record<string, number>>
  readonly skewSeconds?: number
}

/** Where a purpose is in its rotation. */
export type RotationPhase = 'steady' | 'staged' | 'grace'

/** The grace window of a purpose, ms: token lifetime + skew. Throws ERR_CONFIG for an unknown purpose. */
export function graceMs(policy: RotationPolicy, purpose: string): number {
  const lifetime = policy.lifetimes[purpose]
  if (lifetime === undefined || !Number.isFinite(lifetime) || lifetime <= 0) {
    throw new RekeyError('ERR_CONFIG', `no token lifetime is configured for ${purpose} keys`)
  }
  const skew = policy.skewSeconds ?? DEFAULT_SKEW_SECONDS
  if (!Number.isFinite(skew) || skew < 0) throw new RekeyError('ERR_CONFIG', 'the clock skew must be a non-negative number of seconds')
  return (lifetime + skew) * 1000
}

const ofPurpose = (keys: readonly RuleKey[], purpose: string): RuleKey[] => keys.filter((k) => k.purpose === purpose)
const iso = (ms: number): string => new Date(ms).toISOString()

/** The key that signs for `purpose`; ERR_CONFIG when there is none (the service creates it on first start). */
export function currentKey(keys: readonly RuleKey[], purpose: string): RuleKey {
  const current = ofPurpose(keys, purpose).filter((k) => k.state === 'current')
  if (current.length !== 1 || current[0] === undefined) {
    throw new RekeyError('ERR_CONFIG', `the store has no current ${purpose} key: start \`rekey serve\` once on this store (it creates the keys)`)
  }
  return current[0]
}

/** `staged` while a key waits as `next`, `grace` while previous keys verify, else `steady`. */
export function phaseOf(keys: readonly RuleKey[], purpose: string): RotationPhase {
  const mine = ofPurpose(keys, purpose)
  if (mine.some((k) => k.state === 'next')) return 'staged'
  if (mine.some((k) => k.state === 'previous')) return 'grace'
  return 'steady'
}

/**
 * Rotate, first step: a new key is staged as `next` unless one is already staged, in which
 * case the rotation resumes with it (rotate is idempotent: a second call finishes the first).
 */
export function planStage(keys: readonly RuleKey[], purpose: string): { readonly stage: true } | { readonly stage: false, readonly next: string } {
  currentKey(keys, purpose)
  const staged = ofPurpose(keys, purpose).find((k) => k.state === 'next')
  return staged === undefined ? { stage: true } : { stage: false, next: staged.kid }
}

/**
 * Rotate, second step (once every live instance verifies with the staged key): `next` signs,
 * the old `current` becomes `previous` with its retire time, or, with `hard`, the old current
 * and every previous key are revoked. `null` when no key is staged.
 */
export function planPromote(keys: readonly RuleKey[], purpose: string, now: number, policy: RotationPolicy, options: { hard?: boolean } = {}): KeyChange[] | null {
  const next = ofPurpose(keys, purpose).find((k) => k.state === 'next')
  if (next === undefined) return null
  const current = currentKey(keys, purpose)
  const changes: KeyChange[] = []
  if (options.hard === true) {
    changes.push({ kid: current.kid, expectState: 'current', state: 'revoked', revokedAt: now, revokeReason: 'rotate --hard' })
    for (const k of ofPurpose(keys, purpose).filter((k) => k.state === 'previous')) {
      changes.push({ kid: k.kid, expectState: 'previous', state: 'revoked', revokedAt: now, revokeReason: 'rotate --hard' })
    }
  } else {
    changes.push({ kid: current.kid, expectState: 'current', state: 'previous', demotedAt: now, retireAfter: now + graceMs(policy, purpose) })
  }
  changes.push({ kid: next.kid, expectState: 'next', state: 'current', activatedAt: now })
  return changes
}

/** Whether a previous key may be retired now, and if not, why and from when. */
export interface FinalizeCheck {
  readonly kid: string
  readonly purpose: string
  readonly safe: boolean
  /** Why it is safe or not, in words. */
  readonly reason: string
  /** Live sessions whose refresh token this key signed (refresh keys; 0 for access keys). */
  readonly liveSessions: number
  /** When it becomes safe (epoch ms); `now` or earlier when safe. */
  readonly safeAt: number
}

/**
 * When a previous key may be retired: access keys once demotion + lifetime + skew has passed
 * (no access token it signed can be unexpired); refresh keys as soon as no live session holds
 * a refresh token it signed (an exact count from the store), or once their lifetime has passed.
 */
export function finalizeCheck(key: RuleKey, now: number, policy: RotationPolicy, liveSessions: ReadonlyMap<string, number>): FinalizeCheck {
  const safeAt = key.retireAfter ?? (key.demotedAt === null ? Number.POSITIVE_INFINITY : key.demotedAt + graceMs(policy, key.purpose))
  const sessions = key.purpose === 'refresh' ? liveSessions.get(key.kid) ?? 0 : 0
  const base = { kid: key.kid, purpose: key.purpose, liveSessions: sessions }
  if (now >= safeAt) return { ...base, safe: true, safeAt, reason: 'its grace window (token lifetime + skew) has passed' }
  if (key.purpose === 'refresh' && sessions === 0) return { ...base, safe: true, safeAt: now, reason: 'no live session holds a refresh token it signed' }
  if (!Number.isFinite(safeAt)) return { ...base, safe: false, safeAt, reason: 'its demotion time is unknown; only --force retires it' }
  const reason = key.purpose === 'refresh'
    ? `${sessions} live session(s) hold a refresh token it signed; safe once they end or at ${iso(safeAt)}`
    : `access tokens it signed can be valid until ${iso(safeAt)} (token lifetime + skew)`
  return { ...base, safe: false, safeAt, reason }
}

/** What finalize does: the previous keys it retires, and the check of each. */
export interface FinalizePlan {
  readonly changes: readonly KeyChange[]
  readonly checks: readonly FinalizeCheck[]
  readonly forced: boolean
}

/**
 * Finalize: retires every previous key of the purposes. All or nothing: if any of them can
 * still have live tokens, it is refused with ERR_UNSAFE naming each key, its reason, its
 * live-session count and when it becomes safe, unless `force`.
 */
export function planFinalize(keys: readonly RuleKey[], purposes: readonly string[], now: number, policy: RotationPolicy,
  liveSessions: ReadonlyMap<string, number>, options: { force?: boolean } = {}): FinalizePlan {
  const previous = keys.filter((k) => purposes.includes(k.purpose) && k.state === 'previous')
  const checks = previous.map((k) => finalizeCheck(k, now, policy, liveSessions))
  const unsafe = checks.filter((c) => !c.safe)
  const force = options.force === true
  if (unsafe.length > 0 && !force) {
    const problems = unsafe.map((c) => `${c.purpose} key ${c.kid}: ${c.reason}`)
    const until = Math.max(...unsafe.map((c) => c.safeAt))
    const when = Number.isFinite(until) ? `; finalize is safe from ${iso(until)}` : ''
    throw new RekeyError('ERR_UNSAFE', `finalize refused: ${problems.join('; ')}${when} (or use --force, which cuts those tokens)`, { problems })
  }
  const changes = previous.map((k): KeyChange => ({ kid: k.kid, expectState: 'previous', state: 'retired', retiredAt: now }))
  return { changes, checks, forced: force && unsafe.length > 0 }
}

/**
 * Rollback: the most recently demoted previous key signs again; the current key becomes
 * previous with a full grace window (tokens it signed stay valid). Refused (ERR_UNSAFE) when
 * no previous key exists any more (retired or revoked keys never come back).
 */
export function planRollback(keys: readonly RuleKey[], purpose: string, now: number, policy: RotationPolicy): KeyChange[] {
  const current = currentKey(keys, purpose)
  const previous = ofPurpose(keys, purpose)
    .filter((k) => k.state === 'previous')
    .sort((a, b) => (b.demotedAt ?? 0) - (a.demotedAt ?? 0))[0]
  if (previous === undefined) {
    throw new RekeyError('ERR_UNSAFE', `rollback refused: the ${purpose} keys have no previous key (it was finalized or revoked); rotate instead`)
  }
  return [
    { kid: current.kid, expectState: 'current', state: 'previous', demotedAt: now, retireAfter: now + graceMs(policy, purpose) },
    { kid: previous.kid, expectState: 'previous', state: 'current', activatedAt: now, demotedAt: null, retireAfter: null },
  ]
}

/** What revoking a kid does. */
export type RevokePlan =
  | { readonly kind: 'unknown' }
  | { readonly kind: 'unchanged', readonly key: RuleKey }
  | { readonly kind: 'revoke', readonly key: RuleKey, readonly change: KeyChange }

/**
 * Revoke: a next, previous or retired key becomes revoked at once. Revoking a revoked key
 * changes nothing. The current key is refused (ERR_UNSAFE): something else must sign first,
 * which is what `emergency` (new key and revocation together) and `rotate --hard` do.
 */
export function planRevoke(keys: readonly RuleKey[], kid: string, now: number, reason: string): RevokePlan {
  const key = keys.find((k) => k.kid === kid)
  if (key === undefined) return { kind: 'unknown' }
  if (key.state === 'revoked') return { kind: 'unchanged', key }
  if (key.state === 'current') {
    throw new RekeyError('ERR_UNSAFE', `revoke refused: ${kid} is the current ${key.purpose} key and signs every new token; use \`rekey emergency --secret ${key.purpose}\` (new key and revocation at once) or \`rekey rotate --secret ${key.purpose} --hard\``)
  }
  return { kind: 'revoke', key, change: { kid, expectState: key.state, state: 'revoked', revokedAt: now, revokeReason: reason } }
}

/**
 * Emergency: every key of the purposes that still verifies (next, current, previous) is
 * revoked. The caller inserts one new current key per purpose in the same transaction, ends
 * every session and sets the global not-before.
 */
export function planEmergency(keys: readonly RuleKey[], purposes: readonly string[], now: number, reason: string): KeyChange[] {
  return keys
    .filter((k) => purposes.includes(k.purpose) && (k.state === 'next' || k.state === 'current' || k.state === 'previous'))
    .map((k) => ({ kid: k.kid, expectState: k.state, state: 'revoked', revokedAt: now, revokeReason: reason }))
}
