/**
 * The audit row (and inventory entry) of an env-file change, written so that the file and
 * the log never disagree: no audit, no change.
 *
 * The row is appended inside a store transaction and the file is rewritten inside that same
 * transaction, as its last step. If the rewrite fails, the transaction rolls back: no row.
 * If the commit fails after the rewrite, the old file content is put back and the command
 * fails. Only if that restore fails too do they disagree, and the error says so and names
 * the `.bak` copy to restore from.
 */
import { rm } from 'node:fs/promises'
import { restoreEnvFile } from '../config/env-file.ts'
import { recordRotationIn } from '../service/inventory/inventory.ts'
import { describeError, operatorOf, type CliIo, type GlobalOptions } from './context.ts'
import { commandConfig, liveSecretsOf, openForWrite, withStore } from './audit-store.ts'

/** The audit entry of one env-file change. */
export interface EnvAuditEntry {
  /** The variable (family) changed: `JWT_SECRET`, `JWT_ACCESS_SECRET`, a `--var` name. */
  readonly secret: string
  readonly method: string
  readonly notes: string
  /** When the secret now signing took effect, to record in the inventory; `null`: not a rotation. */
  readonly rotatedAt: number | null
  /** Record `rotatedAt` only for a secret the inventory has no rotation of yet (finalize). */
  readonly onlyIfUnknown?: boolean
  /** The inventory kind; default: the stored kind, else a guess from the name. */
  readonly kind?: string
}

/** Where the row went (the last one, when a change wrote one per secret). */
export interface EnvAuditResult {
  readonly seq: number
  readonly store: string
  /** Every row written, in order. */
  readonly seqs: readonly number[]
}

/**
 * Appends the audit row(s) of a change to `file` (one per entry) and runs `write` (which
 * rewrites the file) in the same transaction; `oldText` is what the file held before, to put
 * back if the commit fails after the rewrite.
 */
export async function auditedEnvChange(
  io: CliIo,
  globals: GlobalOptions,
  fileVars: Readonly<Record<string, string>>,
  entries: EnvAuditEntry | readonly EnvAuditEntry[],
  file: { readonly path: string, readonly oldText: string | null },
  write: () => Promise<void>,
): Promise<EnvAuditResult> {
  const config = await commandConfig(io, globals, fileVars)
  const { store, audit } = await openForWrite(io, config)
  const list = Array.isArray(entries) ? entries as readonly EnvAuditEntry[] : [entries as EnvAuditEntry]
  const fieldsOf = (entry: EnvAuditEntry) => ({
    secret: entry.secret,
    operator: operatorOf(globals),
    method: entry.method,
    notes: entry.notes,
    requestId: null,
    at: Date.now(),
    liveSecrets: liveSecretsOf(io.env, fileVars),
  })
  return withStore(store, async () => {
    let written = false
    try {
      const seqs = await store.transaction(async (tx) => {
        const rows: number[] = []
        for (const entry of list) {
          const fields = fieldsOf(entry)
          const known = entry.onlyIfUnknown === true && ((await tx.getSecret(entry.secret))?.lastRotatedAt ?? null) !== null
          const row = entry.rotatedAt === null || known
            ? await audit.append(fields, tx)
            : await recordRotationIn(tx, audit, config.cadence, { ...fields, ...(entry.kind === undefined ? {} : { kind: entry.kind }), rotatedAt: entry.rotatedAt })
          rows.push(row.seq)
        }
        await write()
        written = true
        return rows
      })
      return { seq: seqs.at(-1) ?? 0, seqs, store: store.location }
    } catch (err) {
      if (!written) throw err
      // The file changed but its audit row did not commit: put the old content back.
      try {
        if (file.oldText === null) await rm(file.path, { force: true })
        else await restoreEnvFile(file.path, file.oldText)
      } catch (restoreErr) {
        throw new Error(`the audit row could not be written (${describeError(err)}) and ${file.path} could not be restored (${describeError(restoreErr)}): restore it from ${file.path}.bak.1`)
      }
      throw new Error(`the audit row could not be written (${describeError(err)}), so ${file.path} was put back as it was`)
    }
  })
}
