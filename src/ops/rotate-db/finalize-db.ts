/**
 * The end of a database rotation: the previous login user stops logging in
 * (`ALTER ROLE ... NOLOGIN`). Refused (`ERR_UNSAFE`, exit 1) before the delay recorded at
 * rotation, while the current URL does not log in, or while the previous user still has open
 * sessions (some instance still runs with the old URL); `force` skips those checks.
 */
import { RekeyError } from '../../core/errors.ts'
import { parseDatabaseUrl, planAlternation, userOf } from './alternating-users.ts'
import type { AuditTrail } from './audit-trail.ts'
import { currentUserOf, disableLogin, roleInfo, sessionsOf, testLogin, withClient } from './postgres-admin.ts'
import type { DbSecretTarget } from './rotation-state.ts'

/** Options of {@link finalizeDbRotation}. */
export interface FinalizeDbOptions {
  readonly variable: string
  readonly adminUrl: string
  readonly target: DbSecretTarget
  readonly trail: AuditTrail
  /** Skip the delay, current-URL and open-session checks. */
  readonly force?: boolean
  /** Also end the previous user's open sessions (`pg_terminate_backend`). */
  readonly terminateSessions?: boolean
  /** Epoch ms. Default `Date.now()`. */
  readonly now?: number
}

/** What finalize did. */
export interface FinalizeDbResult {
  readonly variable: string
  readonly changed: boolean
  readonly disabledUser: string | null
  readonly user: string | null
  readonly sessionsTerminated: number
  readonly forced: boolean
}

/** Disables the previous user of the pending rotation of `options.variable`, if it is safe. */
export async function finalizeDbRotation(options: FinalizeDbOptions): Promise<FinalizeDbResult> {
  const now = options.now ?? Date.now()
  const force = options.force === true
  const { variable, target, trail } = options
  const pending = await target.readPending()
  if (pending === null) return { variable, changed: false, disabledUser: null, user: null, sessionsTerminated: 0, forced: force }
  if (now < pending.finalizeAfter && !force) {
    throw new RekeyError('ERR_UNSAFE', `"${pending.previousUser}" may still be in use until ${new Date(pending.finalizeAfter).toISOString()} (the delay of the rotation of ${new Date(pending.rotatedAt).toISOString()}): rerun then, or --force`)
  }
  parseDatabaseUrl(options.adminUrl, '--admin-url')
  const currentText = await target.readCurrentUrl()
  if (currentText === undefined) throw new RekeyError('ERR_CONFIG', `${variable} is not set in the ${target.describe}`)
  const currentUser = userOf(parseDatabaseUrl(currentText, variable), variable)
  if (currentUser === pending.previousUser) {
    throw new RekeyError('ERR_CONFIG', `${variable} still uses "${currentUser}", the user finalize would disable: the recorded rotation does not match the URL`)
  }
  const appRole = pending.appRole ?? planAlternation(currentUser).appRole

  const terminated = await withClient(options.adminUrl, '--admin-url', 'admin', async (client) => {
    const previous = await roleInfo(client, pending.previousUser)
    if (previous === null) return 0 // dropped by hand: nothing left to disable
    // Guards even under --force: disabling these would lock out the admin or a superuser.
    if (previous.superuser || previous.name === await currentUserOf(client)) {
      throw new RekeyError('ERR_UNSAFE', `"${previous.name}" is a superuser or the admin user: rekey will not disable its login`)
    }
    if (!force) {
      try {
        await testLogin(currentText, currentUser, appRole)
      } catch (err) {
        throw new RekeyError('ERR_UNSAFE', `the current ${variable} does not log in (${(err as Error).message}): disabling "${previous.name}" could cut the application off`)
      }
      const open = await sessionsOf(client, previous.name)
      if (open.length > 0 && options.terminateSessions !== true) {
        const who = [...new Set(open.map((s) => `${s.application === '' ? 'unnamed' : s.application} from ${s.client}`))].join(', ')
        throw new RekeyError('ERR_UNSAFE', `"${previous.name}" still has ${open.length} open session(s) (${who}): an instance still runs with the old URL. Redeploy it, or --force`)
      }
    }
    return await disableLogin(client, previous.name, options.terminateSessions === true)
  })

  const notes = `login of ${pending.previousUser} disabled${terminated > 0 ? `, ${terminated} session(s) ended` : ''}${force ? ' (forced)' : ''}`
  await target.clearPending({ at: now, secret: variable, operator: trail.operator, method: 'finalize-db', notes, requestId: null })
  return { variable, changed: true, disabledUser: pending.previousUser, user: currentUser, sessionsTerminated: terminated, forced: force }
}
