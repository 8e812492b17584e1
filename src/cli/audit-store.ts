/**
 * What the CLI's commands share to reach the store: the configuration (store location,
 * master key, cadence) resolved by `config/` exactly as `rekey serve` resolves it, the audit
 * log, and the live secrets to mask in notes.
 */
import { existsSync } from 'node:fs'
import { loadConfig, type RekeyConfig } from '../config/load.ts'
import { resolveMasterKey } from '../config/master-key.ts'
import { isPostgresLocation } from '../config/store-location.ts'
import { AuditLog } from '../service/audit/audit-log.ts'
import { readEnvFile } from '../config/env-file.ts'
import { RekeyError } from '../core/errors.ts'
import { maskLocation } from '../store/errors.ts'
import { openStore } from '../store/open.ts'
import type { Store } from '../store/store.ts'
import type { CliIo, GlobalOptions } from './context.ts'
import { createdFilesNote } from './created-files-note.ts'

/** The variables of the `--env-file`, or none (no flag, or no file yet). */
export async function envFileVars(globals: GlobalOptions): Promise<Record<string, string>> {
  if (globals.envFile === undefined) return {}
  return (await readEnvFile(globals.envFile)).env
}

/**
 * The configuration of a command: `--store`, the environment, `--env-file` (its REKEY_STORE
 * and REKEY_MASTER_KEY, and the store beside it) and `rekey.config.json`, by the one resolver
 * `rekey serve` uses. `fileVars`: the env file's variables when the caller already read them.
 */
export async function commandConfig(io: CliIo, globals: GlobalOptions, fileVars?: Readonly<Record<string, string>>): Promise<RekeyConfig> {
  return loadConfig({
    env: io.env,
    flags: { store: globals.store },
    scope: 'command',
    ...(globals.envFile === undefined ? {} : { envFile: globals.envFile, envFileVars: fileVars ?? await envFileVars(globals) }),
  })
}

/**
 * The audit log of `store` for writing. The master key is generated beside a new SQLite store
 * (with a warning), never for a store that holds data (ERR_CONFIG, nothing written).
 */
export async function openAuditLog(io: CliIo, config: RekeyConfig, store: Store, options: { create?: boolean } = {}): Promise<AuditLog> {
  const { key, generated } = await resolveMasterKey(config, options)
  if (generated !== null) io.stderr(`rekey: REKEY_MASTER_KEY is not set: generated ${generated} to key the audit chain (production must set REKEY_MASTER_KEY)\n`)
  return AuditLog.open(store, { current: key, previous: config.masterKeyPrev?.reveal() })
}

/**
 * Opens the store to write (creating a SQLite file if needed) with its audit log. The master
 * key is resolved first, so a refusal leaves no file, directory or row behind.
 */
export async function openForWrite(io: CliIo, config: RekeyConfig): Promise<{ store: Store, audit: AuditLog }> {
  const { key, generated } = await resolveMasterKey(config, { create: true })
  if (generated !== null) {
    io.stderr(`rekey: REKEY_MASTER_KEY is not set: generated ${generated} to key the audit chain (production must set REKEY_MASTER_KEY)\n`)
    io.stderr(await createdFilesNote(config.store, generated, config.envFile))
  }
  const store = await openStore(config.store)
  try {
    const audit = await AuditLog.open(store, { current: key, previous: config.masterKeyPrev?.reveal() })
    if (!await audit.fitsChain()) {
      throw new RekeyError('ERR_CONFIG', `the master key does not verify the audit log of ${maskLocation(config.store)}: set the REKEY_MASTER_KEY it was written with (nothing was written)`)
    }
    return { store, audit }
  } catch (err) {
    await store.close()
    throw err
  }
}

/** Opens the store to read; `null` for a SQLite file that does not exist, so reading creates nothing. */
export async function openForRead(location: string): Promise<Store | null> {
  if (!isPostgresLocation(location) && !existsSync(location)) return null
  return openStore(location)
}

/** Runs `fn` on the store and closes it. */
export async function withStore<T>(store: Store, fn: (store: Store) => Promise<T>): Promise<T> {
  try {
    return await fn(store)
  } finally {
    await store.close()
  }
}

const SECRET_NAME = /(^|_)(SECRET|TOKEN|PASSWORD|PASSWD|PASS|PWD|KEY|CREDENTIALS?|DSN)(_|$)|DATABASE_URL/i
// The shell's working directory, not a password: masking it hid every path under it in the notes.
const NOT_SECRET = new Set(['PWD'])

/** Values of secret-looking variables (process and env file), to mask if pasted into notes. */
export function liveSecretsOf(env: CliIo['env'], fileVars: Readonly<Record<string, string>> = {}): string[] {
  const out: string[] = []
  for (const vars of [env, fileVars]) {
    for (const [name, value] of Object.entries(vars)) {
      if (value !== undefined && value.length >= 8 && SECRET_NAME.test(name) && !NOT_SECRET.has(name)) out.push(value)
    }
  }
  return out
}
