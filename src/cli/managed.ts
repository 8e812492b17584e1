/**
 * The managed side of the CLI: open the store and the master key the way `rekey serve` does,
 * run one lifecycle operation, close. Refuses (exit 2) to act on a store that does not exist
 * or with a master key that does not open its keys, rather than creating either by accident.
 */
import { existsSync } from 'node:fs'
import { loadConfig, isPostgresLocation, type RekeyConfig } from '../config/load.ts'
import { parseDuration } from '../core/duration.ts'
import { isRekeyError } from '../core/errors.ts'
import { auditHasher } from '../service/audit.ts'
import { keyInputOf, resealLegacyKeys } from '../service/keys.ts'
import { Lifecycle, SECRET_TARGETS, type Actor, type SecretTarget } from '../service/lifecycle.ts'
import { masterKeyFileOf, resolveMasterKey } from '../service/master-key.ts'
import { Webhooks } from '../service/webhooks.ts'
import { openStore } from '../store/open.ts'
import type { Store } from '../store/store.ts'
import type { ComputeAuditHash } from '../store/types.ts'
import { cadencePolicyOf } from './audit-store.ts'
import { CliExit, EXIT, operatorOf, type CliIo, type GlobalOptions } from './context.ts'

/** What a managed command works with. */
export interface ManagedContext {
  readonly config: RekeyConfig
  readonly store: Store
  readonly masterKey: Buffer
  readonly computeHash: ComputeAuditHash
  readonly lifecycle: Lifecycle
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
 * Opens the store named by `--store` / REKEY_STORE / rekey.config.json / `./.rekey/rekey.db`,
 * runs `fn`, closes the store. `create` lets a command start a new embedded store.
 */
export async function withManaged<T>(io: CliIo, globals: GlobalOptions, fn: (ctx: ManagedContext) => Promise<T>, options: { create?: boolean } = {}): Promise<T> {
  const config = loadConfig({ env: io.env, flags: { store: globals.store } })
  const sqlite = !isPostgresLocation(config.store)
  if (sqlite && options.create !== true) {
    if (!existsSync(config.store)) {
      throw new CliExit(EXIT.USAGE, `no store at ${config.store}: start \`rekey serve\` once there, or name the store with --store or REKEY_STORE`)
    }
    if (config.masterKey === undefined && !existsSync(masterKeyFileOf(config.store))) {
      throw new CliExit(EXIT.USAGE, `REKEY_MASTER_KEY is not set and there is no master.key beside ${config.store}: set the master key rekey serve uses`)
    }
  }
  const { key: masterKey } = await resolveMasterKey(config)
  const store = await openStore(config.store)
  let webhooks: Webhooks | null = null
  try {
    const keyset = await store.getKeyset()
    const previousMasterKey = config.masterKeyPrev?.reveal()
    for (const key of keyset.keys) {
      try {
        keyInputOf(previousMasterKey === undefined ? masterKey : [masterKey, previousMasterKey], key)
      } catch (err) {
        // A key row edited behind rekey's back: refused loudly, as the service does.
        if (isRekeyError(err) && err.code === 'ERR_UNSAFE') throw err
        // Writing keys or audit rows under another master key would break every instance and the chain.
        throw new CliExit(EXIT.USAGE, 'the master key does not open the keys of this store: set the REKEY_MASTER_KEY that rekey serve uses')
      }
    }
    const computeHash = auditHasher(masterKey)
    // Rows sealed before keys were bound to their state are bound now (once; a no-op after).
    if (previousMasterKey === undefined) await resealLegacyKeys(store, masterKey, computeHash, operatorOf(globals), Date.now())
    // REKEY_WEBHOOK_URL: rotations run from the CLI post their notices too (sent before exit).
    webhooks = config.webhookUrl === undefined ? null : new Webhooks({ url: config.webhookUrl.reveal().toString('utf8'), log: { warn: (_obj, msg) => io.stderr(`rekey: warning: ${msg}\n`) } })
    const notify = webhooks
    const lifecycle = new Lifecycle({
      store, masterKey, computeHash, accessTokenTtl: config.accessTokenTtl, refreshTokenTtl: config.refreshTokenTtl,
      ...(previousMasterKey === undefined ? {} : { previousMasterKey }),
      ...(config.accessKeyAlg === undefined ? {} : { accessKeyAlg: config.accessKeyAlg }),
      cadencePolicy: cadencePolicyOf(),
      ...(notify === null ? {} : { onEvent: (event) => notify.notice(event) }),
    })
    return await fn({ config, store, masterKey, computeHash, lifecycle, actor: { operator: operatorOf(globals), requestId: null } })
  } finally {
    await webhooks?.flush()
    await store.close()
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
