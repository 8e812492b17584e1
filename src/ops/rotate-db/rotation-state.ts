/**
 * Where a database URL and its pending rotation live.
 *
 * - Env-file mode: the URL in `<VAR>`; the pending rotation in `<VAR>_PREVIOUS_USER`,
 *   `<VAR>_ROTATED_AT` and `<VAR>_FINALIZE_AFTER` (ISO 8601). Finalize removes the first and
 *   the last; `<VAR>_ROTATED_AT` stays as the date of the last rotation.
 * - Store mode: the URL sealed under the master key in setting `secret.<VAR>` (first run:
 *   read from the process environment's `<VAR>`); the pending rotation as JSON in setting
 *   `db-rotation.<VAR>`. Both change in one transaction with the audit row.
 */
import { open, seal } from '../../core/seal.ts'
import { readEnvFile, updateEnvFile } from '../../config/env-file.ts'
import { auditWrite } from '../../service/audit/audit-hash.ts'
import type { AuditEventInput } from '../../store/types.ts'
import type { AuditTrail } from './audit-trail.ts'

/** A rotation whose previous user still logs in. Times are epoch ms. */
export interface PendingDbRotation {
  readonly previousUser: string
  readonly rotatedAt: number
  readonly finalizeAfter: number
  /** The application role, when known (store mode records it). */
  readonly appRole?: string
}

/** Where the URL of one variable is read and written. */
export interface DbSecretTarget {
  /** `env-file <path>` or `store <location>`, for reports. */
  readonly describe: string
  readCurrentUrl(): Promise<string | undefined>
  readPending(): Promise<PendingDbRotation | null>
  /** Writes the new URL and the pending rotation, then (or with it) the audit row. */
  writeRotation(url: string, pending: PendingDbRotation, event: AuditEventInput): Promise<void>
  /** Forgets the pending rotation and appends the audit row. */
  clearPending(event: AuditEventInput): Promise<void>
}

const iso = (ms: number): string => new Date(ms).toISOString()

function parseTime(text: string | undefined, name: string): number {
  const ms = text === undefined ? Number.NaN : Date.parse(text)
  if (!Number.isFinite(ms)) throw new TypeError(`${name} is not an ISO 8601 date`)
  return ms
}

/** The env-file variables that record a pending rotation of `variable`. */
export function pendingVariables(variable: string): { previousUser: string, rotatedAt: string, finalizeAfter: string } {
  return { previousUser: `${variable}_PREVIOUS_USER`, rotatedAt: `${variable}_ROTATED_AT`, finalizeAfter: `${variable}_FINALIZE_AFTER` }
}

/** The URL in an env file; audit rows go to `trail`. */
export function envFileTarget(file: string, variable: string, trail: AuditTrail): DbSecretTarget {
  const names = pendingVariables(variable)
  return {
    describe: `env-file ${file}`,
    async readCurrentUrl() {
      const { env, exists } = await readEnvFile(file)
      if (!exists) throw new TypeError(`${file} does not exist`)
      const value = env[variable]
      return value === undefined || value === '' ? undefined : value
    },
    async readPending() {
      const { env } = await readEnvFile(file)
      const previousUser = env[names.previousUser]
      if (previousUser === undefined || previousUser === '') return null
      const rotatedAt = parseTime(env[names.rotatedAt], names.rotatedAt)
      const after = env[names.finalizeAfter]
      return { previousUser, rotatedAt, finalizeAfter: after === undefined ? rotatedAt + 86_400_000 : parseTime(after, names.finalizeAfter) }
    },
    async writeRotation(url, pending, event) {
      await updateEnvFile(file, {
        set: {
          [variable]: url,
          [names.previousUser]: pending.previousUser,
          [names.rotatedAt]: iso(pending.rotatedAt),
          [names.finalizeAfter]: iso(pending.finalizeAfter),
        },
      })
      await trail.store.appendAudit(event, trail.computeHash)
    },
    async clearPending(event) {
      await updateEnvFile(file, { remove: [names.previousUser, names.finalizeAfter] })
      await trail.store.appendAudit(event, trail.computeHash)
    },
  }
}

/** The setting holding the sealed URL of `variable`. */
export const urlSetting = (variable: string): string => `secret.${variable}`
/** The setting holding the pending rotation of `variable`. */
export const pendingSetting = (variable: string): string => `db-rotation.${variable}`

/** The URL sealed in the store; the first run reads `<VAR>` from `env`. */
export function storeTarget(trail: AuditTrail, variable: string, env: Record<string, string | undefined>): DbSecretTarget {
  const name = urlSetting(variable)
  // The AAD binds the sealed URL to its setting: copied into another setting it does not open.
  const aad = `setting:${name}`
  return {
    describe: `store ${trail.store.location}`,
    async readCurrentUrl() {
      const sealed = await trail.store.getSetting(name)
      if (sealed !== null) return open(trail.masterKey, sealed, aad).toString('utf8')
      const value = env[variable]
      return value === undefined || value === '' ? undefined : value
    },
    async readPending() {
      const text = await trail.store.getSetting(pendingSetting(variable))
      if (text === null) return null
      const parsed = JSON.parse(text) as { previousUser: string, rotatedAt: string, finalizeAfter: string, appRole?: string }
      return {
        previousUser: parsed.previousUser,
        rotatedAt: parseTime(parsed.rotatedAt, 'rotatedAt'),
        finalizeAfter: parseTime(parsed.finalizeAfter, 'finalizeAfter'),
        ...(parsed.appRole === undefined ? {} : { appRole: parsed.appRole }),
      }
    },
    async writeRotation(url, pending, event) {
      const record = JSON.stringify({ ...pending, rotatedAt: iso(pending.rotatedAt), finalizeAfter: iso(pending.finalizeAfter) })
      await trail.store.transaction(async (tx) => {
        await tx.setSetting(name, seal(trail.masterKey, url, aad))
        await tx.setSetting(pendingSetting(variable), record, { audit: auditWrite(trail.computeHash, event) })
      })
    },
    async clearPending(event) {
      await trail.store.setSetting(pendingSetting(variable), null, { audit: auditWrite(trail.computeHash, event) })
    },
  }
}
