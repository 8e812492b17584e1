/**
 * The store side of `Cipher.fromStore`: an app's cipher over the managed data keys.
 *
 * - The store must exist and hold a current data key: an app never creates a store, a master
 *   key or a data key (`rekey rotate --secret ENCRYPTION_KEY` does).
 * - The data keys open with REKEY_DATA_KEY_ACCESS (`rekey gen --data-key-access`), which opens
 *   them and nothing else; without it, with the master key, resolved as every rekey command
 *   resolves it (REKEY_MASTER_KEY, else the `master.key` beside a SQLite store). The `_PREV`
 *   of either opens rows not yet re-sealed during a master-key rollout.
 * - The cipher follows the store: on every change of the key set (LISTEN/NOTIFY on PostgreSQL,
 *   polling on SQLite) it reloads the data keys, then acknowledges the version in its
 *   heartbeat. It is listed as an instance, so a rotation promotes a staged key only once this
 *   process decrypts with it. A reload that fails keeps the keys loaded, warns once and is tried again.
 */
import { existsSync, statSync } from 'node:fs'
import path from 'node:path'
import { Cipher, type StoreCipherOptions } from '../../core/cipher.ts'
import { CIPHER_INSTANCE_PREFIX, type DataKey } from '../../core/data-keys.ts'
import { RekeyError } from '../../core/errors.ts'
import { resolveMasterKey, decodeMasterKey } from '../../config/master-key.ts'
import { SecretValue } from '../../config/secret-value.ts'
import { isPostgresLocation, storeLocationProblem } from '../../store/location.ts'
import { maskLocation } from '../../store/errors.ts'
import { openStore } from '../../store/open.ts'
import type { Store } from '../../store/store.ts'
import type { Keyset } from '../../store/types.ts'
import { systemClock } from '../clock.ts'
import { Heartbeat } from '../cluster/heartbeat.ts'
import { Reloader } from '../cluster/reloader.ts'
import { reporterIdOf } from '../usage/usage-report.ts'
import { accessKeysOf, dataKeysOf, dataKeyRecords } from './managed-data-keys.ts'

/** The store a cipher opens when none is named: REKEY_STORE, else the embedded default. */
const DEFAULT_STORE = './.rekey/rekey.db'
const NAME = /^[A-Za-z0-9_.:-]{1,64}$/

function masterKeyOf(env: Readonly<Record<string, string | undefined>>, name: string): Buffer | undefined {
  const text = env[name]
  if (text === undefined || text === '') return undefined
  try {
    return decodeMasterKey(text)
  } catch (err) {
    if (name.startsWith('REKEY_DATA_KEY_ACCESS')) throw new RekeyError('ERR_CONFIG', `${name} must be the 32-byte key \`rekey gen --data-key-access\` prints (base64)`)
    throw new RekeyError('ERR_CONFIG', `${name} ${(err as Error).message}`)
  }
}

/**
 * The keys the data keys open with: REKEY_DATA_KEY_ACCESS (+ _PREV), which opens data keys
 * only, else the master key (REKEY_MASTER_KEY + _PREV, or the `master.key` beside a SQLite
 * store), from which the same access key is derived.
 */
async function accessKeysFor(where: string, env: Readonly<Record<string, string | undefined>>): Promise<{ keys: Buffer[], given: boolean }> {
  const access = masterKeyOf(env, 'REKEY_DATA_KEY_ACCESS')
  const accessPrev = masterKeyOf(env, 'REKEY_DATA_KEY_ACCESS_PREV')
  if (access !== undefined) return { keys: accessPrev === undefined ? [access] : [access, accessPrev], given: true }
  if (accessPrev !== undefined) throw new RekeyError('ERR_CONFIG', 'REKEY_DATA_KEY_ACCESS_PREV is set but REKEY_DATA_KEY_ACCESS is not')
  const current = masterKeyOf(env, 'REKEY_MASTER_KEY')
  let masterKey: Buffer
  try {
    masterKey = (await resolveMasterKey({ store: where, masterKey: current === undefined ? undefined : new SecretValue(current) })).key
  } catch (err) {
    // The master key is the fallback: an application is meant to hold the access key, so name it first.
    if (err instanceof RekeyError && err.code === 'ERR_CONFIG') throw new RekeyError('ERR_CONFIG', `REKEY_DATA_KEY_ACCESS is not set (\`rekey gen --data-key-access\` prints it, where the store's master key is), and ${err.message}`)
    throw err
  }
  const previous = masterKeyOf(env, 'REKEY_MASTER_KEY_PREV')
  return { keys: accessKeysOf(previous === undefined ? [masterKey] : [masterKey, previous]), given: false }
}

/**
 * The data keys of `keyset` opened with `access`, or an error saying which key did not open
 * them. A master key given as REKEY_DATA_KEY_ACCESS is refused by name: it would open them
 * (through the derivation), but an application must never hold the master key.
 */
function openDataKeys(keyset: Keyset, access: { keys: Buffer[], given: boolean }, where: string): DataKey[] {
  try {
    return dataKeysOf(keyset, access.keys)
  } catch (err) {
    if (!(err instanceof RekeyError) || err.code !== 'ERR_CONFIG' || !/does not open/.test(err.message)) throw err
    if (!access.given) {
      throw new RekeyError('ERR_CONFIG', `the data keys of ${maskLocation(where)} do not open with this master key (REKEY_MASTER_KEY, REKEY_MASTER_KEY_PREV or the master.key beside the store): give applications the key rekey gen --data-key-access prints, in REKEY_DATA_KEY_ACCESS`)
    }
    let isMaster = false
    try {
      dataKeysOf(keyset, accessKeysOf(access.keys))
      isMaster = true
    } catch { /* not the master key either */ }
    if (isMaster) {
      throw new RekeyError('ERR_CONFIG', 'REKEY_DATA_KEY_ACCESS holds the master key, not the data-key access key: an application never holds the master key; give it the key rekey gen --data-key-access prints (it opens the data keys and nothing else)')
    }
    throw new RekeyError('ERR_CONFIG', `the data keys of ${maskLocation(where)} do not open with REKEY_DATA_KEY_ACCESS${access.keys.length > 1 ? ' or REKEY_DATA_KEY_ACCESS_PREV' : ''}: set it to what rekey gen --data-key-access prints with this store's master key (after rekey rotate --secret master-key, the new one)`)
  }
}

/** Opens the cipher of the store's managed data keys. */
export async function openStoreCipher(location: string | undefined, options: StoreCipherOptions): Promise<Cipher> {
  const env = options.env ?? process.env
  const where = location ?? (env.REKEY_STORE === undefined || env.REKEY_STORE === '' ? DEFAULT_STORE : env.REKEY_STORE)
  if (typeof where !== 'string' || where.trim() === '') throw new TypeError('the store location must be a non-empty string')
  const name = options.name ?? 'cipher'
  if (!NAME.test(name)) throw new TypeError('name must be 1 to 64 characters of A-Z a-z 0-9 _ . : -')
  const problem = storeLocationProblem(where)
  if (problem !== undefined) throw new RekeyError('ERR_CONFIG', `store location ${problem}`)
  if (!isPostgresLocation(where) && !existsSync(where)) {
    // The absolute path: an application started from another directory sees where it looked.
    throw new RekeyError('ERR_CONFIG', `no rekey store at ${path.resolve(where)}: create the data key with rekey rotate --secret ENCRYPTION_KEY, or name the store (REKEY_STORE)`)
  }
  if (!isPostgresLocation(where) && statSync(where).isDirectory()) {
    throw new RekeyError('ERR_CONFIG', `the rekey store ${where} is a directory: name the SQLite file (for example ${path.join(where, 'rekey.db')})`)
  }
  const accessKeys = await accessKeysFor(where, env)

  const warn = options.onWarning ?? ((message: string) => { process.emitWarning(message, 'RekeyWarning') })
  const store: Store = await openStore(where, { max: 2, onError: () => {} })
  try {
    const keyset = await store.getKeyset()
    // Opened first: a row edited behind rekey's back is named as such (ERR_UNSAFE), not taken for a missing key.
    const keys = openDataKeys(keyset, accessKeys, where)
    if (!dataKeyRecords(keyset).some((k) => k.state === 'current')) {
      throw new RekeyError('ERR_CONFIG', `the store at ${maskLocation(where)} holds no managed data key: create one with rekey rotate --secret ENCRYPTION_KEY`)
    }
    const cipher = new Cipher(keys, options)
    let version = keyset.version
    const heartbeat = new Heartbeat({ instanceId: `${CIPHER_INSTANCE_PREFIX}${reporterIdOf(name)}`, store, clock: systemClock, keysetVersion: () => version, onError: () => {} })

    // A failed reload keeps the keys loaded, warns once per distinct problem and is retried by itself.
    const reloader = new Reloader({
      load: async () => {
        const fresh = await store.getKeyset()
        if (fresh.version === version) return
        cipher.update(dataKeysOf(fresh, accessKeys.keys))
        version = fresh.version
        // Acknowledges at once: a rotation waits for this before the new key encrypts.
        await heartbeat.beat()
      },
      onFailure: (err) => warn(`rekey cipher (${name}): reloading the data keys failed (${(err as Error)?.message ?? String(err)}); the keys loaded are kept`),
    })
    const unsubscribe = await store.subscribe((channel) => {
      if (channel === 'keys') void reloader.reload()
    })
    await heartbeat.start()
    // A change committed between the first read and the subscription sent its notification
    // before this process listened (a rotation that did not wait for a cipher not yet listed):
    // read once more, now that every later change is notified.
    await reloader.reload()
    cipher.onClose(async () => {
      await unsubscribe().catch(() => {})
      await reloader.stop()
      await heartbeat.stop()
      await store.close()
    })
    return cipher
  } catch (err) {
    await store.close().catch(() => {})
    throw err
  }
}
