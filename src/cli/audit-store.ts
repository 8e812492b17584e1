/**
 * Where the CLI keeps its audit log and inventory, and what it needs to write there: the
 * store location, the master key that keys the chain, the cadence policy, and the live
 * secrets to mask in notes.
 */
import { existsSync, readFileSync } from 'node:fs'
import path from 'node:path'
import { isPostgresLocation } from '../config/load.ts'
import { parseCadencePolicy, type CadencePolicy } from '../core/cadence.ts'
import { RekeyError } from '../core/errors.ts'
import { masterKeyAt } from '../service/master-key-at.ts'
import { readEnvFile } from '../service/env-file.ts'
import { openStore } from '../store/open.ts'
import type { Store } from '../store/store.ts'
import type { CliIo, GlobalOptions } from './context.ts'

/** The variables of the `--env-file`, or none (no flag, or no file yet). */
export async function envFileVars(globals: GlobalOptions): Promise<Record<string, string>> {
  if (globals.envFile === undefined) return {}
  return (await readEnvFile(globals.envFile)).env
}

/**
 * The store: `--store`, else `REKEY_STORE`; in env-file mode then the file's own
 * `REKEY_STORE` (relative to the file), else `.rekey/rekey.db` beside the file; otherwise
 * `./.rekey/rekey.db`.
 */
export function auditStoreOf(globals: GlobalOptions, env: CliIo['env'], fileVars: Readonly<Record<string, string>> = {}): string {
  if (globals.store !== undefined && globals.store !== '') return globals.store
  if (env.REKEY_STORE !== undefined && env.REKEY_STORE !== '') return env.REKEY_STORE
  if (globals.envFile === undefined) return './.rekey/rekey.db'
  const dir = path.dirname(path.resolve(globals.envFile))
  const own = fileVars.REKEY_STORE
  if (own !== undefined && own !== '') return isPostgresLocation(own) ? own : path.resolve(dir, own)
  return path.join(dir, '.rekey', 'rekey.db')
}

/** The environment the master key is read from: the process's, then the env file's. */
function keyEnv(env: CliIo['env'], fileVars: Readonly<Record<string, string>>): CliIo['env'] {
  const own = env.REKEY_MASTER_KEY
  return own !== undefined && own !== '' ? env : { REKEY_MASTER_KEY: fileVars.REKEY_MASTER_KEY }
}

/** The master key for writing: generated beside a new SQLite store, with a warning, if there is none. */
export async function writerMasterKey(io: CliIo, location: string, fileVars: Readonly<Record<string, string>>, envFile?: string): Promise<Buffer> {
  const { key, generated } = await masterKeyAt(location, keyEnv(io.env, fileVars), { create: true })
  if (generated !== null) {
    io.stderr(`rekey: REKEY_MASTER_KEY is not set: generated ${generated} to key the audit chain (production must set REKEY_MASTER_KEY)\n`)
    io.stderr(createdNote(location, generated, envFile))
  }
  return key
}

/**
 * What the first env-file command created, named, with where it belongs: a newcomer who
 * commits it all would publish the master key and the old secrets kept in the backups.
 */
function createdNote(location: string, masterKeyFile: string, envFile: string | undefined): string {
  const shown = (file: string): string => path.relative(process.cwd(), file) || '.'
  const dir = path.dirname(masterKeyFile)
  const backups = envFile === undefined ? undefined : `${path.basename(envFile)}.bak*`
  const ignore = [`${path.basename(dir)}/`, ...(backups === undefined ? [] : [backups])]
  return `rekey: created ${shown(dir)}/ with ${path.basename(location)} (the audit log and rotation inventory) and ${path.basename(masterKeyFile)} (its key)` +
    `${backups === undefined ? '' : `; every rewrite of ${shown(envFile as string)} keeps the old file as ${backups} (0600, old secrets inside)`}` +
    `. They belong in .gitignore, never in git: ${ignore.map((entry) => `"${entry}"`).join(' and ')}\n`
}

/** The master key for verifying: never generated (a new key could not verify old rows). */
export async function readerMasterKey(io: CliIo, location: string, fileVars: Readonly<Record<string, string>>): Promise<Buffer> {
  return (await masterKeyAt(location, keyEnv(io.env, fileVars))).key
}

/** Opens the store to write (creating a SQLite file if needed). */
export function openForWrite(location: string): Promise<Store> {
  return openStore(location)
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

/** The cadence policy: the `cadence` object of `./rekey.config.json` when the file exists, else the defaults. */
export function cadencePolicyOf(cwd = process.cwd()): CadencePolicy {
  const file = path.join(cwd, 'rekey.config.json')
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return parseCadencePolicy(undefined)
    throw new RekeyError('ERR_CONFIG', `${file}: cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`)
  }
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch {
    throw new RekeyError('ERR_CONFIG', `${file}: not valid JSON`)
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new RekeyError('ERR_CONFIG', `${file}: must hold a JSON object`)
  return parseCadencePolicy((parsed as { cadence?: unknown }).cadence, file)
}

const SECRET_NAME = /(^|_)(SECRET|TOKEN|PASSWORD|PASSWD|PASS|PWD|KEY|CREDENTIALS?|DSN)(_|$)|DATABASE_URL/i

/** Values of secret-looking variables (process and env file), to mask if pasted into notes. */
export function liveSecretsOf(env: CliIo['env'], fileVars: Readonly<Record<string, string>> = {}): string[] {
  const out: string[] = []
  for (const vars of [env, fileVars]) {
    for (const [name, value] of Object.entries(vars)) {
      if (value !== undefined && value.length >= 8 && SECRET_NAME.test(name)) out.push(value)
    }
  }
  return out
}
