/**
 * `rekey users force-reset`: the runbooks' answer to a leaked auth key or password database.
 * Marked users cannot log in normally until they set a new password; every session and access
 * token they hold ends at once (token version bumped, sessions revoked), on every instance.
 */
import type { Store } from '../../store/store.ts'
import type { ComputeAuditHash } from '../../store/types.ts'
import { auditWrite } from '../audit/audit-hash.ts'

/** What a forced reset did. */
export interface ForceResetReport {
  /** How many users must set a new password. */
  readonly users: number
  /** How many live sessions ended. */
  readonly sessionsEnded: number
}

/** Marks one user (by normalized email) or, with `email: null`, every user, in one audited transaction. */
export async function forcePasswordReset(store: Store, computeHash: ComputeAuditHash,
  options: { email: string | null, operator: string, now: number, requestId?: string | null }): Promise<ForceResetReport> {
  const { email, now } = options
  return store.transaction(async (tx) => {
    const ids = await tx.forcePasswordChange(email)
    let sessionsEnded = 0
    if (email === null) {
      sessionsEnded = await tx.revokeAllSessions('force-reset', now)
    } else {
      for (const id of ids) sessionsEnded += await tx.revokeAllForUser(id, 'force-reset', now)
    }
    if (ids.length > 0) {
      const write = auditWrite(computeHash, {
        at: now,
        secret: 'user-password',
        operator: options.operator,
        method: 'force-reset',
        notes: email === null
          ? `every user (${ids.length}) must set a new password at next login; ${sessionsEnded} sessions ended`
          : `user ${ids[0]} (${email}) must set a new password at next login; ${sessionsEnded} sessions ended`,
        requestId: options.requestId ?? null,
      })
      await tx.appendAudit(write.event, write.computeHash)
    }
    return { users: ids.length, sessionsEnded }
  })
}
