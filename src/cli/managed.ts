/**
 * The managed side of the CLI: the same operations wiring `rekey serve` opens
 * (`service/operations.ts`), one lifecycle operation, close. Refuses (exit 2) to act on a
 * store that does not exist or with a master key that does not open its keys, rather than
 * creating either by accident.
 */
import type { RekeyConfig } from '../config/load.ts'
import { parseDuration } from '../core/duration.ts'
import type { AuditLog } from '../service/audit/audit-log.ts'
import { SECRET_TARGETS, type Actor, type KeyRotation, type SecretTarget } from '../service/keys/rotation.ts'
import type { DataKeyLifecycle } from '../service/data-keys/managed-data-keys.ts'
import { openOperations } from '../service/operations.ts'
import type { Store } from '../store/store.ts'
import { commandConfig } from './audit-store.ts'
import { createdFilesNote } from './created-files-note.ts'
import { CliExit, EXIT, operatorOf, type CliIo, type GlobalOptions } from './context.ts'

/** What a managed command works with. */
export interface ManagedContext {
  readonly config: RekeyConfig
  readonly store: Store
  readonly audit: AuditLog
  readonly rotation: KeyRotation
  readonly dataKeys: DataKeyLifecycle
  readonly actor: Actor
}

/** Checks `--secret` for managed mode: access, refresh or all (default). */
export function managedSecretOf(name: string | undefined): SecretTarget | undefined {
  if (name === undefined) return undefined
  if ((SECRET_TARGETS as readonly string[]).includes(name)) return name as SecretTarget
  if (name === 'master-key') throw new CliExit(EXIT.USAGE, '--secret master-key: the master key is only rotated (rekey rotate --secret master-key); its rotation has no grace window to finalize or roll back')
  throw new CliExit(EXIT.USAGE, `--secret must be ${SECRET_TARGETS.join(', ')} in managed mode`)
}

/** `--timeout` as milliseconds: seconds or a duration such as `30s`, `2m`. */
export function timeoutOf(value: string | undefined, fallbackMs: number): number {
  if (value === undefined) return fallbackMs
  const seconds = parseDuration(value)
  if (seconds === undefined || seconds > 3600) throw new CliExit(EXIT.USAGE, '--timeout must be a duration up to 1h, such as 30, 30s or 2m')
  return seconds * 1000
}

/**
 * Opens the managed operations on the store named by `--store` / REKEY_STORE /
 * rekey.config.json / `./.rekey/rekey.db`, runs `fn`, closes. `create` lets a command start a
 * new embedded store.
 */
export async function withManaged<T>(io: CliIo, globals: GlobalOptions, fn: (ctx: ManagedContext) => Promise<T>, options: { create?: boolean } = {}): Promise<T> {
  const config = await commandConfig(io, globals)
  // REKEY_WEBHOOK_URL: rotations run from the CLI post their notices too (sent before exit).
  let created: string | null = null
  const ops = await openOperations(config, { warn: (_obj, msg) => io.stderr(`rekey: warning: ${msg}\n`) }, {
    create: options.create === true,
    onMasterKey: ({ generated }) => {
      if (generated !== null) io.stderr(`rekey: REKEY_MASTER_KEY is not set: generated ${generated} (production must set REKEY_MASTER_KEY)\n`)
      created = generated
    },
  })
  // A new embedded store (the first data key of an app): what to keep out of git, as env-file mode says.
  if (created !== null) io.stderr(await createdFilesNote(config.store, created, undefined))
  try {
    return await fn({ config, store: ops.store, audit: ops.audit, rotation: ops.rotation, dataKeys: ops.dataKeys, actor: { operator: operatorOf(globals), requestId: null } })
  } finally {
    await ops.close()
  }
}

/** Prints a report: JSON with `--json`, else the lines `human` returns. */
export function printReport(io: CliIo, globals: GlobalOptions, report: unknown, human: () => readonly string[]): void {
  if (globals.json === true) {
    io.stdout(`${JSON.stringify(report)}\n`)
    return
  }
  for (const line of human()) io.stdout(`${line}\n`)
}
