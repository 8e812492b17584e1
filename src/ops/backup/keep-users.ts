/**
 * A restore keeps the users' security state of the replaced store. A backup from before a
 * password change, an admin removal, a forced reset or a logout-all holds the user as they
 * were: restored as is, the old password would sign in again and the removed admin would be
 * one again. So, for every user in both stores, the replaced store's password hash and
 * forced-change mark win, its role wins when it is lower (admin → user; a promotion after the
 * backup is not carried, it is easy to redo), and the token version is the higher of the two.
 * Users registered after the backup are not recreated (their sessions, keys and audit rows
 * would be missing): they are counted, so the operator can tell them to register again.
 */
import type { StoreOperations } from '../../store/store.ts'
import type { UserRecord, UserSecurity } from '../../store/types.ts'

/** What was carried from the replaced store's users, in counts (never a hash or an email). */
export interface UserCarry {
  /** Users whose password (hash) was changed after the backup. */
  readonly passwords: number
  /** Admins of the backup whose rights were removed after it. */
  readonly rolesLowered: number
  /** Users marked for a forced password change (or who since set a new one). */
  readonly resetMarks: number
  /** Users whose tokens were cut (logout-all, reset) after the backup. */
  readonly tokenVersions: number
  /** Users registered after the backup, not in the restored store. */
  readonly onlyInReplaced: number
}

/** What `restored` (the backup's user) becomes with `replaced`'s security state. */
function keptState(restored: UserRecord, replaced: UserRecord): UserSecurity {
  return {
    passwordHash: replaced.passwordHash,
    role: restored.role === 'admin' && replaced.role !== 'admin' ? replaced.role : restored.role,
    tokenVersion: Math.max(restored.tokenVersion, replaced.tokenVersion),
    mustChangePassword: replaced.mustChangePassword,
  }
}

/** Applies the replaced store's users' security state inside the caller's transaction. */
export async function keepUsers(tx: Pick<StoreOperations, 'listUsers' | 'setUserSecurity'>, replaced: readonly UserRecord[]): Promise<UserCarry> {
  const theirs = new Map(replaced.map((u) => [u.id, u]))
  const counts = { passwords: 0, rolesLowered: 0, resetMarks: 0, tokenVersions: 0, onlyInReplaced: 0 }
  const ours = new Set<string>()
  for (const user of await tx.listUsers()) {
    ours.add(user.id)
    const other = theirs.get(user.id)
    if (other === undefined) continue
    const kept = keptState(user, other)
    const changed = {
      passwords: kept.passwordHash !== user.passwordHash,
      rolesLowered: kept.role !== user.role,
      resetMarks: kept.mustChangePassword !== user.mustChangePassword,
      tokenVersions: kept.tokenVersion !== user.tokenVersion,
    }
    if (!Object.values(changed).some(Boolean)) continue
    await tx.setUserSecurity(user.id, kept)
    for (const [name, yes] of Object.entries(changed)) if (yes) counts[name as keyof typeof changed]++
  }
  counts.onlyInReplaced = replaced.filter((u) => !ours.has(u.id)).length
  return counts
}

/** One phrase for the warning and the `restore` row; `null` when nothing was carried. */
export function describeUserCarry(carry: UserCarry): string | null {
  const parts: string[] = []
  if (carry.passwords > 0) parts.push(`${carry.passwords} user(s) keep the password set after the backup`)
  if (carry.rolesLowered > 0) parts.push(`${carry.rolesLowered} admin(s) removed after the backup stay removed`)
  if (carry.resetMarks > 0) parts.push(`${carry.resetMarks} user(s) keep their forced-reset mark (set or cleared) of the replaced store`)
  if (carry.tokenVersions > 0) parts.push(`${carry.tokenVersions} user(s) keep their tokens cut (logout-all, reset)`)
  if (carry.onlyInReplaced > 0) parts.push(`${carry.onlyInReplaced} user(s) registered after the backup are not in it and must register again`)
  return parts.length === 0 ? null : parts.join('; ')
}
