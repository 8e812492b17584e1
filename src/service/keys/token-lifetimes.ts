/**
 * Token lifetimes shared through the store: each instance announces its access and refresh
 * token lifetimes, the store keeps the longest ever announced, and every rotation step (from
 * any instance or the CLI) waits at least that long.
 */
import type { RotationPolicy } from '../../core/rotation-rules.ts'
import type { Store } from '../../store/store.ts'

/** The store setting where instances announce their token lifetimes (seconds, JSON). */
export const TOKEN_LIFETIMES_SETTING = 'auth.token_lifetimes'

function parseLifetimes(text: string | null): { access?: number, refresh?: number } {
  if (text === null) return {}
  try {
    const value = JSON.parse(text) as { access?: unknown, refresh?: unknown }
    const ok = (n: unknown): number | undefined => (typeof n === 'number' && Number.isFinite(n) && n > 0 ? n : undefined)
    const access = ok(value.access)
    const refresh = ok(value.refresh)
    return { ...(access === undefined ? {} : { access }), ...(refresh === undefined ? {} : { refresh }) }
  } catch {
    return {}
  }
}

/**
 * Announces a service's token lifetimes in the store, keeping the longest ever announced,
 * so every rotation step (from any instance or CLI) waits at least that long.
 */
export async function announceTokenLifetimes(store: Store, lifetimes: { access: number, refresh: number }): Promise<void> {
  const known = parseLifetimes(await store.getSetting(TOKEN_LIFETIMES_SETTING))
  const access = Math.max(known.access ?? 0, lifetimes.access)
  const refresh = Math.max(known.refresh ?? 0, lifetimes.refresh)
  if (access !== known.access || refresh !== known.refresh) {
    await store.setSetting(TOKEN_LIFETIMES_SETTING, JSON.stringify({ access, refresh }))
  }
}

/** The store setting where instances announce the JWKS `max-age` they serve (seconds). */
export const JWKS_MAX_AGE_SETTING = 'jwks.max_age'

/**
 * The longest publication delay rekey sets, seconds (1 day: REKEY_JWKS_MAX_AGE and
 * `--publish-delay` accept no more). A longer announced or recorded one was not written by rekey.
 */
export const MAX_PUBLISH_DELAY_SECONDS = 86_400

/**
 * An announced max-age: garbage counts as none (0), a value past {@link MAX_PUBLISH_DELAY_SECONDS}
 * (a row edited behind rekey's back) as that maximum, so it can neither hang a rotation for
 * years nor break it with an instant no date can hold.
 */
function parseSeconds(text: string | null): number {
  const n = text === null || text.trim() === '' ? Number.NaN : Number(text)
  return Number.isNaN(n) || n < 0 ? 0 : Math.min(n, MAX_PUBLISH_DELAY_SECONDS)
}

/**
 * Announces the JWKS `max-age` a service serves, keeping the longest ever announced: a staged
 * asymmetric key is published at least that long before it signs, whichever process (a CLI
 * with another REKEY_JWKS_MAX_AGE, the scheduler) promotes it.
 */
export async function announceJwksMaxAge(store: Store, seconds: number): Promise<void> {
  const known = parseSeconds(await store.getSetting(JWKS_MAX_AGE_SETTING))
  if (seconds > known) await store.setSetting(JWKS_MAX_AGE_SETTING, String(seconds))
}

/** The longest JWKS `max-age` any instance has announced, in seconds (0 when none has). */
export async function announcedJwksMaxAge(store: Store): Promise<number> {
  return parseSeconds(await store.getSetting(JWKS_MAX_AGE_SETTING))
}

/**
 * `policy` with the longest token lifetimes any instance has announced: an operator whose CLI
 * has a shorter JWT_EXPIRATION than the service must not make finalize cut tokens the service issued.
 */
export async function withAnnouncedLifetimes(store: Store, policy: RotationPolicy): Promise<RotationPolicy> {
  const announced = parseLifetimes(await store.getSetting(TOKEN_LIFETIMES_SETTING))
  const own = policy.lifetimes
  const access = Math.max(own.access ?? 0, announced.access ?? 0)
  const refresh = Math.max(own.refresh ?? 0, announced.refresh ?? 0)
  if (access === own.access && refresh === own.refresh) return policy
  return Object.freeze({ ...policy, lifetimes: Object.freeze({ access, refresh }) })
}
