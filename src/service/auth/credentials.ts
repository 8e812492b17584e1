/**
 * The one credential check, used by login and the dashboard sign-in: normalise the email,
 * look the user up, verify the password with argon2id (against a dummy hash for an unknown
 * email, so timing does not tell the two cases apart).
 */
import { canonicalEmail, hasInvisibleCharacters } from '../../core/email.ts'
import type { Store } from '../../store/store.ts'
import type { UserRecord } from '../../store/types.ts'
import type { PasswordHasher } from './passwords.ts'

/**
 * Emails: trimmed, NFC and lowercased ({@link canonicalEmail}), one @, no spaces, no control,
 * format or invisible characters, at most 254 characters. Register, login, the dashboard
 * sign-in, `admin create`/`remove` and `users force-reset --email` all go through here.
 */
export function normalizeEmail(email: string): string | null {
  const value = canonicalEmail(email.trim())
  if (value.length > 254 || hasInvisibleCharacters(value) || !/^[^\s@]{1,64}@[^\s@]+\.[^\s@]+$/u.test(value)) return null
  return value
}

/** The user whose email and password these are, or `null` (unknown email and wrong password alike). */
export async function checkCredentials(deps: { store: Store, passwords: PasswordHasher }, email: string, password: string): Promise<UserRecord | null> {
  const normalized = normalizeEmail(email)
  const user = normalized === null ? null : await deps.store.getUserByEmail(normalized)
  // Unknown user: spend one verification anyway, so timing does not tell the two cases apart.
  const ok = user === null ? await deps.passwords.verifyDummy(password) : await deps.passwords.verify(user.passwordHash, password)
  return user !== null && ok ? user : null
}
