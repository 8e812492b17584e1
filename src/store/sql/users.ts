/** Users: accounts, roles and the token version that logout-all bumps. Emails are unique in their canonical spelling (NFC, lowercased): stored and looked up so. */
import { canonicalEmail } from '../../core/email.ts'
import type { NewUser, Role, UserRecord, UserSecurity } from '../types.ts'
import { bumpChange, bumpUserChange } from './changes.ts'
import { int, text } from './executor.ts'
import type { SqlExecutor, SqlRow } from './executor.ts'

const COLUMNS = 'id, email, password_hash, role, token_version, created_at, must_change_password'

function toUser(row: SqlRow): UserRecord {
  return {
    id: text(row, 'id'),
    email: text(row, 'email'),
    passwordHash: text(row, 'password_hash'),
    role: text(row, 'role') as Role,
    tokenVersion: int(row, 'token_version'),
    createdAt: int(row, 'created_at'),
    mustChangePassword: int(row, 'must_change_password') !== 0,
  }
}


export async function createUser(q: SqlExecutor, user: NewUser): Promise<UserRecord> {
  const rows = await q.all(
    `INSERT INTO users (id, email, password_hash, role, token_version, created_at)
     VALUES ($1, $2, $3, $4, 0, $5) RETURNING ${COLUMNS}`,
    [user.id, canonicalEmail(user.email), user.passwordHash, user.role ?? 'user', user.createdAt],
  )
  return toUser(rows[0]!)
}

export async function getUserByEmail(q: SqlExecutor, email: string): Promise<UserRecord | null> {
  const rows = await q.all(`SELECT ${COLUMNS} FROM users WHERE email = $1`, [canonicalEmail(email)])
  return rows[0] === undefined ? null : toUser(rows[0])
}

export async function getUserById(q: SqlExecutor, id: string): Promise<UserRecord | null> {
  const rows = await q.all(`SELECT ${COLUMNS} FROM users WHERE id = $1`, [id])
  return rows[0] === undefined ? null : toUser(rows[0])
}

export async function bumpTokenVersion(q: SqlExecutor, userId: string): Promise<number | null> {
  const rows = await q.all('UPDATE users SET token_version = token_version + 1 WHERE id = $1 RETURNING token_version', [userId])
  if (rows[0] === undefined) return null
  await bumpUserChange(q, 'revocations', userId)
  return int(rows[0], 'token_version')
}

export async function setRole(q: SqlExecutor, userId: string, role: Role): Promise<boolean> {
  const changed = await q.run('UPDATE users SET role = $2 WHERE id = $1', [userId, role])
  if (changed === 0) return false
  await bumpUserChange(q, 'users', userId)
  return true
}

export async function setPasswordHash(q: SqlExecutor, userId: string, passwordHash: string): Promise<boolean> {
  const changed = await q.run('UPDATE users SET password_hash = $2 WHERE id = $1', [userId, passwordHash])
  if (changed === 0) return false
  await bumpChange(q, 'users')
  return true
}

/** Every user, oldest first. */
export async function listUsers(q: SqlExecutor): Promise<UserRecord[]> {
  return (await q.all(`SELECT ${COLUMNS} FROM users ORDER BY created_at, id`)).map(toUser)
}

/**
 * Sets what guards a user's sign-in at once (a restore keeps the replaced store's): the hash,
 * the role, the token version and the forced-change mark. Channel `revocations`: cached users
 * and their token versions are dropped.
 */
export async function setUserSecurity(q: SqlExecutor, userId: string, state: UserSecurity): Promise<boolean> {
  const changed = await q.run(
    'UPDATE users SET password_hash = $2, role = $3, token_version = $4, must_change_password = $5 WHERE id = $1',
    [userId, state.passwordHash, state.role, state.tokenVersion, state.mustChangePassword ? 1 : 0],
  )
  if (changed === 0) return false
  await bumpUserChange(q, 'revocations', userId)
  return true
}

export async function countUsers(q: SqlExecutor): Promise<number> {
  const rows = await q.all('SELECT COUNT(*) AS n FROM users')
  return rows[0] === undefined ? 0 : int(rows[0], 'n')
}

/**
 * Sets a new password hash and clears the forced-change mark. Channel `users` (cached users
 * carry no hash, but the mark changes what a login may do).
 */
export async function setPassword(q: SqlExecutor, userId: string, passwordHash: string): Promise<boolean> {
  const changed = await q.run('UPDATE users SET password_hash = $2, must_change_password = 0 WHERE id = $1', [userId, passwordHash])
  if (changed === 0) return false
  await bumpUserChange(q, 'users', userId)
  return true
}

/**
 * Marks users so their next login can only set a new password, and bumps their token
 * version so every access token they hold stops working. `email` null: every user.
 * The ids marked.
 */
export async function forcePasswordChange(q: SqlExecutor, email: string | null): Promise<string[]> {
  const rows = email === null
    ? await q.all('UPDATE users SET must_change_password = 1, token_version = token_version + 1 RETURNING id')
    : await q.all('UPDATE users SET must_change_password = 1, token_version = token_version + 1 WHERE email = $1 RETURNING id', [canonicalEmail(email)])
  const ids = rows.map((row) => text(row, 'id'))
  if (email === null) {
    if (ids.length > 0) await bumpChange(q, 'revocations')
  } else {
    for (const id of ids) await bumpUserChange(q, 'revocations', id)
  }
  return ids
}
