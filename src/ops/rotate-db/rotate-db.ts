/**
 * `rekey rotate-db`: PostgreSQL credentials rotated with alternating users (the AWS Secrets
 * Manager strategy). The idle login user of the application role gets a new password and the
 * role's grants, the new URL is tested with a real login, then written; the previous user
 * keeps logging in until {@link finalizeDbRotation} after the delay.
 */
import { RekeyError } from '../../core/errors.ts'
import { generateSecret } from '../../core/secret.ts'
import { maskUrl, parseDatabaseUrl, planAlternation, userOf, withCredentials } from './alternating-users.ts'
import { recordInventory, type AuditTrail } from './audit-trail.ts'
import { currentUserOf, enableLoginUser, roleInfo, testLogin, undoEnable, withClient } from './postgres-admin.ts'
import type { DbSecretTarget } from './rotation-state.ts'

/** Default wait before the previous user may be disabled: 86400 s (24 hours). */
export const DEFAULT_DB_DELAY_SECONDS = 86_400

/** Options of {@link rotateDbCredentials}. */
export interface RotateDbOptions {
  /** The variable holding the URL, e.g. `DATABASE_URL`. */
  readonly variable: string
  /** A role that may create roles and grant the application role (CREATEROLE, or superuser). */
  readonly adminUrl: string
  readonly target: DbSecretTarget
  readonly trail: AuditTrail
  /** Seconds before finalize may disable the previous user. Default 86400 (24 hours). */
  readonly delaySeconds?: number
  /** The application role. Default: the user's name without `_blue`/`_green`. */
  readonly appRole?: string
  /** Rotate although the previous rotation was not finalized (its user's password then changes). */
  readonly force?: boolean
  /** Epoch ms. Default `Date.now()`. */
  readonly now?: number
}

/** What a rotation did; URLs masked. */
export interface RotateDbResult {
  readonly variable: string
  readonly target: string
  readonly appRole: string
  readonly previousUser: string
  readonly user: string
  readonly createdUser: boolean
  readonly url: string
  readonly rotatedAt: string
  readonly finalizeAfter: string
}

/** Rotates the credentials in `options.variable`; see the module comment. */
export async function rotateDbCredentials(options: RotateDbOptions): Promise<RotateDbResult> {
  const now = options.now ?? Date.now()
  const delay = options.delaySeconds ?? DEFAULT_DB_DELAY_SECONDS
  const { variable, target, trail } = options
  parseDatabaseUrl(options.adminUrl, '--admin-url')
  const currentText = await target.readCurrentUrl()
  if (currentText === undefined) throw new RekeyError('ERR_CONFIG', `${variable} is not set in the ${target.describe}`)
  const current = parseDatabaseUrl(currentText, variable)
  const plan = planAlternation(userOf(current, variable), options.appRole)
  const pending = await target.readPending()
  if (pending !== null && options.force !== true) {
    throw new RekeyError('ERR_UNSAFE', `the rotation of ${new Date(pending.rotatedAt).toISOString()} is not finalized: "${pending.previousUser}" may still be in use. Run \`rekey finalize --secret ${variable}\` first, or --force`)
  }
  const password = generateSecret({ bytes: 32, encoding: 'base64url' })
  const nextUrl = withCredentials(current, plan.nextUser, password)

  const created = await withClient(options.adminUrl, '--admin-url', 'admin', async (client) => {
    const adminUser = await currentUserOf(client)
    const role = await roleInfo(client, plan.appRole)
    if (role === null) throw new RekeyError('ERR_CONFIG', `the application role "${plan.appRole}" does not exist (create it NOLOGIN with the application's grants, or pass --app-role)`)
    if (role.superuser) throw new RekeyError('ERR_CONFIG', `the application role "${plan.appRole}" is a superuser: give the application a role of its own first`)
    const next = await roleInfo(client, plan.nextUser)
    if (next?.superuser === true || plan.nextUser === adminUser) {
      throw new RekeyError('ERR_CONFIG', `"${plan.nextUser}" is a superuser or the admin user: rekey will not change its password`)
    }
    const wasCreated = await enableLoginUser(client, plan.nextUser, plan.appRole, password)
    try {
      await testLogin(nextUrl, plan.nextUser, plan.appRole)
    } catch (err) {
      await undoEnable(client, plan.nextUser, wasCreated, next?.canLogin === true).catch(() => {})
      throw new Error(`${(err as Error).message}; nothing was written, "${plan.currentUser}" is unchanged`)
    }
    return wasCreated
  })

  const finalizeAfter = now + delay * 1000
  const notes = `${plan.currentUser} -> ${plan.nextUser} (role ${plan.appRole}); finalize from ${new Date(finalizeAfter).toISOString()}`
  await target.writeRotation(nextUrl, { previousUser: plan.currentUser, rotatedAt: now, finalizeAfter, appRole: plan.appRole }, {
    at: now, secret: variable, operator: trail.operator, method: 'rotate-db', notes, requestId: null,
  })
  await recordInventory(trail, variable, now, 'rotate-db', notes)
  return {
    variable,
    target: target.describe,
    appRole: plan.appRole,
    previousUser: plan.currentUser,
    user: plan.nextUser,
    createdUser: created,
    url: maskUrl(nextUrl),
    rotatedAt: new Date(now).toISOString(),
    finalizeAfter: new Date(finalizeAfter).toISOString(),
  }
}
