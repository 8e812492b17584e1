/**
 * The master key, resolved in one place for `rekey serve` and every command: REKEY_MASTER_KEY
 * (in env-file mode also read from the file), else the `master.key` beside an embedded SQLite
 * store. A key is generated (0600, atomically, once) only when the store itself is being
 * created: a store that already holds keys, audit rows or users was sealed and chained under
 * some key, and a new one would neither open nor verify anything in it.
 */
import { randomBytes } from 'node:crypto'
import { constants, existsSync, promises as fs } from 'node:fs'
import path from 'node:path'
import { RekeyError } from '../core/errors.ts'
import { isPostgresLocation } from '../store/location.ts'
import { sqliteHoldsData } from '../store/sqlite/sqlite-file.ts'
import type { SecretValue } from './secret-value.ts'

/** How to make a master key: 32 random bytes, base64. */
export const MASTER_KEY_HINT = 'generate one with `rekey gen --encoding base64`'

/**
 * Decodes a master key: 32 bytes, as base64, base64url or 64 hex digits (what `rekey gen`
 * prints by default; 64 hex digits read as base64 would be 48 bytes, so the forms cannot be
 * confused). Throws a `RangeError` whose message never repeats the value.
 */
export function decodeMasterKey(text: string): Buffer {
  const trimmed = text.trim()
  if (/^[0-9a-fA-F]{64}$/.test(trimmed)) return Buffer.from(trimmed, 'hex')
  if (!/^[A-Za-z0-9+/_-]+={0,2}$/.test(trimmed)) throw new RangeError(`must be 32 bytes encoded as base64 or 64 hex digits (${MASTER_KEY_HINT})`)
  const bytes = Buffer.from(trimmed, /[-_]/.test(trimmed) ? 'base64url' : 'base64')
  if (bytes.length !== 32) throw new RangeError(`must decode to exactly 32 bytes, not ${bytes.length} (${MASTER_KEY_HINT})`)
  return bytes
}

/** Where the generated master key of an embedded store lives: `master.key` beside the database. */
export function masterKeyFileOf(storePath: string): string {
  return path.join(path.dirname(path.resolve(storePath)), 'master.key')
}

/** Reads a `master.key` file; ERR_CONFIG naming the file when it does not hold a key. */
export async function readMasterKeyFile(file: string): Promise<Buffer> {
  try {
    return decodeMasterKey(await fs.readFile(file, 'utf8'))
  } catch (err) {
    if (err instanceof RangeError) throw new RekeyError('ERR_CONFIG', `${file} does not hold a 32-byte base64 master key`)
    throw err
  }
}

/** What {@link resolveMasterKey} reads. */
export interface MasterKeySource {
  /** The store location, already resolved. */
  readonly store: string
  /** REKEY_MASTER_KEY (from the environment, or the env file), decoded. */
  readonly masterKey: SecretValue | undefined
  /** The `--env-file` REKEY_MASTER_KEY was also looked for in, if any. */
  readonly envFile?: string | undefined
}

/** Options of {@link resolveMasterKey}. */
export interface ResolveMasterKeyOptions {
  /** Generate `master.key` when the SQLite store is new (no file, or no key, audit or user row). Default false. */
  readonly create?: boolean
}

/** The master key bytes, and the key file this call generated (or `null`). */
export interface ResolvedMasterKey {
  readonly key: Buffer
  readonly generated: string | null
}

/**
 * Resolves the master key of `source.store`. Refuses with ERR_CONFIG, naming what to set and
 * where it looked, when there is none and the store is not being created: no key file is
 * written. Creation is race-safe: a temp file is hard-linked into place, so of two processes
 * starting at once one creates it and both read the same key.
 */
export async function resolveMasterKey(source: MasterKeySource, options: ResolveMasterKeyOptions = {}): Promise<ResolvedMasterKey> {
  if (source.masterKey !== undefined) return { key: source.masterKey.reveal(), generated: null }
  const lookedIn = source.envFile === undefined ? 'REKEY_MASTER_KEY' : `REKEY_MASTER_KEY of the environment and of ${source.envFile}`
  if (isPostgresLocation(source.store)) {
    throw new RekeyError('ERR_CONFIG', `REKEY_MASTER_KEY is required with a PostgreSQL store: every instance must share it (not found in ${lookedIn})`)
  }
  const file = masterKeyFileOf(source.store)
  if (existsSync(file)) return { key: await readMasterKeyFile(file), generated: null }
  const refusal = (why: string): RekeyError => new RekeyError('ERR_CONFIG',
    `no master key for ${source.store}: ${why}; set REKEY_MASTER_KEY to the key this store was created with, or put its master.key back at ${file} (looked in ${lookedIn} and ${file})`)
  if (options.create !== true) throw refusal('this command never generates one')
  if (sqliteHoldsData(source.store)) throw refusal('the store holds keys, audit rows or users, so a new key would open and verify none of them')
  return generateKeyFile(file)
}

async function generateKeyFile(file: string): Promise<ResolvedMasterKey> {
  await fs.mkdir(path.dirname(file), { recursive: true, mode: 0o700 })
  const temp = `${file}.${randomBytes(6).toString('hex')}.tmp`
  const handle = await fs.open(temp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600)
  try {
    await handle.writeFile(`${randomBytes(32).toString('base64')}\n`, 'utf8')
    await handle.sync()
  } finally {
    await handle.close()
  }
  let generated: string | null = file
  try {
    await fs.link(temp, file)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
    generated = null // another process won the race: use its key
  } finally {
    await fs.rm(temp, { force: true })
  }
  return { key: await readMasterKeyFile(file), generated }
}
