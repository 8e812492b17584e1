/**
 * Where the live secrets come from: the JWT and rekey variables of an env file, and the live
 * keys (next, current, previous) of the managed store, opened with the master key. Each is
 * handed to the {@link LiveMatcher}, which keeps only keyed fingerprints.
 */
import { existsSync, readFileSync } from 'node:fs'
import { isPostgresLocation } from '../../config/store-location.ts'
import { RekeyError } from '../../core/errors.ts'
import { readEnvFile } from '../../config/env-file.ts'
import { keyInputOf } from '../../service/keys/keys.ts'
import { decodeMasterKey, masterKeyFileOf } from '../../config/master-key.ts'
import { maskLocation } from '../../store/errors.ts'
import { openStore } from '../../store/open.ts'
import { DATA_KEY_LABEL, type LiveMatcher } from './live-secrets.ts'
import { DATA_KEY_PURPOSE, kidOfText } from '../../core/data-keys.ts'

/** Variables holding a secret: JWT_* and REKEY_* secrets, keys, tokens and passphrases. */
const SECRET_VARIABLE = /^(?:(?:JWT|REKEY)_\w*(?:SECRET|KEY|TOKEN|PASSPHRASE|PASSWORD)\w*|METRICS_AUTH_TOKEN)$/
const LIVE_STATES = new Set(['next', 'current', 'previous'])

/** Adds the secrets of an env file. A missing file is bad usage. Returns how many were added. */
export async function addEnvFileSecrets(matcher: LiveMatcher, file: string): Promise<number> {
  const { env, exists } = await readEnvFile(file)
  if (!exists) throw new RekeyError('ERR_CONFIG', `${file} does not exist`)
  const before = matcher.size
  for (const [name, value] of Object.entries(env)) {
    if (name === 'JWT_KEYS' || name === 'ENCRYPTION_KEYS') {
      addJwkSecrets(matcher, value, `${name} in ${file}`)
      continue
    }
    // Data keys: the text itself (hex, base64 or a passphrase), under the kid rekey status shows.
    if (name === 'ENCRYPTION_KEY' || name === 'ENCRYPTION_KEY_PREV') {
      if (value !== '') matcher.add(value, `${name} in ${file}`, kidOfText(value))
      continue
    }
    if (SECRET_VARIABLE.test(name) && !name.endsWith('_DATE')) matcher.add(value, `${name} in ${file}`)
  }
  return matcher.size - before
}

function addJwkSecrets(matcher: LiveMatcher, raw: string, label: string): void {
  let parsed: unknown
  try {
    parsed = JSON.parse(raw)
  } catch {
    return
  }
  const list: unknown = Array.isArray(parsed) ? parsed : (parsed as { keys?: unknown } | null)?.keys
  if (!Array.isArray(list)) return
  for (const jwk of list as Array<Record<string, unknown>>) {
    if (jwk?.kty === 'oct' && typeof jwk.k === 'string' && typeof jwk.kid === 'string') {
      matcher.addBytes(Buffer.from(jwk.k, 'base64url'), label, jwk.kid)
    }
  }
}

/** The master key, or `null` when the text is not one (scan warns instead of failing). */
function parseMasterKey(text: string): Buffer | null {
  try {
    return decodeMasterKey(text)
  } catch {
    return null
  }
}

/** Where the store and its master key are; `explicit` when the operator named the store. */
export interface StoreSource {
  readonly location: string
  readonly explicit: boolean
  /** REKEY_MASTER_KEY from the environment or the env file, if any. */
  readonly masterKey: string | undefined
}

/**
 * Adds the live keys of the managed store. A default store that does not exist is skipped;
 * a named one must exist. Returns the number of keys added and a warning when keys could
 * not be opened (no master key, or the wrong one).
 */
export async function addStoreSecrets(matcher: LiveMatcher, source: StoreSource): Promise<{ keys: number, warning?: string }> {
  const postgres = isPostgresLocation(source.location)
  if (!postgres && !existsSync(source.location)) {
    if (source.explicit) throw new RekeyError('ERR_CONFIG', `no store at ${source.location}`)
    return { keys: 0 }
  }
  let masterKey: Buffer | null = null
  if (source.masterKey !== undefined && source.masterKey !== '') masterKey = parseMasterKey(source.masterKey)
  else if (!postgres && existsSync(masterKeyFileOf(source.location))) masterKey = parseMasterKey(readFileSync(masterKeyFileOf(source.location), 'utf8'))
  if (masterKey === null) return { keys: 0, warning: `the keys of ${maskLocation(source.location)} were not checked: no usable master key (set REKEY_MASTER_KEY)` }
  const store = await openStore(source.location)
  let keys = 0
  let unopened = 0
  try {
    for (const record of await store.listKeys()) {
      if (!LIVE_STATES.has(record.state)) continue
      try {
        const input = keyInputOf(masterKey, record)
        if ('secret' in input && Buffer.isBuffer(input.secret)) {
          matcher.addBytes(input.secret, record.purpose === DATA_KEY_PURPOSE ? DATA_KEY_LABEL : `store ${record.purpose} key`, record.kid)
          keys++
        }
      } catch {
        unopened++
      }
    }
  } finally {
    await store.close()
  }
  return unopened === 0 ? { keys } : { keys, warning: `${unopened} key(s) of ${maskLocation(source.location)} could not be opened with this master key` }
}
