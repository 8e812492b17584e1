/**
 * The master key for a store location and an environment, for callers without a full
 * service configuration (the CLI): `REKEY_MASTER_KEY`, else the generated `master.key`
 * beside an embedded SQLite store, as {@link resolveMasterKey} does for the service.
 */
import { existsSync } from 'node:fs'
import type { RekeyConfig } from '../config/load.ts'
import { isPostgresLocation } from '../config/load.ts'
import { RekeyError } from '../core/errors.ts'
import { masterKeyFileOf, resolveMasterKey } from './master-key.ts'

/** Options of {@link masterKeyAt}. */
export interface MasterKeyAtOptions {
  /** Generate `master.key` beside a SQLite store when there is none. Default false: `ERR_CONFIG`. */
  readonly create?: boolean
}

/** Decodes `REKEY_MASTER_KEY` (32 bytes, base64 or base64url); the message never echoes the value. */
function decodeMasterKey(text: string): Buffer {
  const bytes = /^[A-Za-z0-9+/_-]+={0,2}$/.test(text) ? Buffer.from(text, /[-_]/.test(text) ? 'base64url' : 'base64') : Buffer.alloc(0)
  if (bytes.length !== 32) throw new RekeyError('ERR_CONFIG', 'REKEY_MASTER_KEY must be 32 bytes encoded as base64 (generate one with `rekey gen --encoding base64`)')
  return bytes
}

/**
 * The master key bytes for `location`, and the key file this call generated (or `null`).
 * Without `create`, a SQLite store with no key file is an `ERR_CONFIG`.
 */
export async function masterKeyAt(location: string, env: Readonly<Record<string, string | undefined>>, options: MasterKeyAtOptions = {}):
Promise<{ key: Buffer, generated: string | null }> {
  const text = env.REKEY_MASTER_KEY
  if (text !== undefined && text !== '') return { key: decodeMasterKey(text.trim()), generated: null }
  if (isPostgresLocation(location)) throw new RekeyError('ERR_CONFIG', 'REKEY_MASTER_KEY is required with a PostgreSQL store')
  if (options.create !== true && !existsSync(masterKeyFileOf(location))) {
    throw new RekeyError('ERR_CONFIG', `no master key: set REKEY_MASTER_KEY, or keep the generated ${masterKeyFileOf(location)} beside the store`)
  }
  // resolveMasterKey reads only these two fields; it owns the race-safe creation of the file.
  const partial: Pick<RekeyConfig, 'store' | 'masterKey'> = { store: location, masterKey: undefined }
  return resolveMasterKey(partial as RekeyConfig)
}

