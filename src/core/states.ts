/**
 * Key states and what each may do.
 *
 * next → current → previous → retired, or revoked from any state.
 */

/** The life of a key: `next` (published, verifies), `current` (signs and verifies), `previous` (verifies during the grace window), `retired`, `revoked`. */
export type KeyState = 'next' | 'current' | 'previous' | 'retired' | 'revoked'

/** Every state, in life order. */
export const KEY_STATES: readonly KeyState[] = Object.freeze(['next', 'current', 'previous', 'retired', 'revoked'])

/** True for the states whose keys verify tokens. */
export function verifies(state: KeyState): boolean {
  return state === 'next' || state === 'current' || state === 'previous'
}

/** True for the one state whose key signs. */
export function signs(state: KeyState): boolean {
  return state === 'current'
}

/** Narrows an unknown value to a KeyState. */
export function isKeyState(value: unknown): value is KeyState {
  return typeof value === 'string' && (KEY_STATES as readonly string[]).includes(value)
}
