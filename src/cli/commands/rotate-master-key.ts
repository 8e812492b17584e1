/**
 * `rekey rotate --secret master-key`: REKEY_MASTER_KEY holds the new key, REKEY_MASTER_KEY_PREV
 * the one the store is sealed with. Everything sealed is re-wrapped in one transaction and the
 * audit chain continues under the new key (docs/rotation.md, "The master key").
 */
import { existsSync, readFileSync } from 'node:fs'
import { decodeMasterKey, masterKeyFileOf } from '../../config/master-key.ts'
import { isPostgresLocation } from '../../config/store-location.ts'
import { isRekeyError } from '../../core/errors.ts'
import { writeSecretFileAtomic } from '../../config/env-file.ts'
import { rotateMasterKey } from '../../service/keys/master-key-rotation.ts'
import { openStore } from '../../store/open.ts'
import { commandConfig } from '../audit-store.ts'
import { CliExit, EXIT, operatorOf, type CliIo, type GlobalOptions } from '../context.ts'
import { printReport } from '../managed.ts'

/** Replaces the generated master.key of an embedded store with the new key (atomically, 0600). */
async function replaceKeyFile(file: string, newKey: Buffer): Promise<void> {
  await writeSecretFileAtomic(file, `${newKey.toString('base64')}\n`)
}

function holdsKey(text: string, key: Buffer): boolean {
  try {
    return decodeMasterKey(text).equals(key)
  } catch {
    return false
  }
}

export async function rotateMasterKeyCommand(io: CliIo, globals: GlobalOptions): Promise<void> {
  if (globals.envFile !== undefined) throw new CliExit(EXIT.USAGE, '--secret master-key is a managed-mode rotation: drop --env-file and name the store with --store or REKEY_STORE')
  let config
  try {
    config = await commandConfig(io, globals)
  } catch (err) {
    if (isRekeyError(err)) throw new CliExit(EXIT.USAGE, err.message)
    throw err
  }
  if (config.masterKey === undefined) throw new CliExit(EXIT.USAGE, 'REKEY_MASTER_KEY must hold the NEW master key (generate one with `rekey gen --encoding base64`)')
  if (config.masterKeyPrev === undefined) throw new CliExit(EXIT.USAGE, 'REKEY_MASTER_KEY_PREV must hold the master key the store is sealed with now')
  const sqlite = !isPostgresLocation(config.store)
  if (sqlite && !existsSync(config.store)) throw new CliExit(EXIT.USAGE, `no store at ${config.store}: name the store with --store or REKEY_STORE`, 'ERR_CONFIG')
  const newKey = config.masterKey.reveal()
  const oldKey = config.masterKeyPrev.reveal()
  const store = await openStore(config.store)
  let report
  try {
    report = await rotateMasterKey({ store, oldKey, newKey, operator: operatorOf(globals) })
  } catch (err) {
    if (isRekeyError(err) && err.code === 'ERR_CONFIG') throw new CliExit(EXIT.USAGE, err.message)
    throw err
  } finally {
    await store.close()
  }
  // An embedded store whose generated master.key held the old key: it now holds the new one,
  // so `rekey serve` without REKEY_MASTER_KEY keeps working.
  let keyFile: string | null = null
  const file = sqlite ? masterKeyFileOf(config.store) : null
  if (file !== null && existsSync(file) && holdsKey(readFileSync(file, 'utf8'), oldKey)) {
    await replaceKeyFile(file, newKey)
    keyFile = file
  }
  printReport(io, globals, { ...report, keyFile }, () => report.changed
    ? [
        `re-wrapped ${report.keys} key(s)${report.alreadyNew > 0 ? ` (${report.alreadyNew} already under the new key)` : ''} from master key k:${report.oldKeyId} to k:${report.newKeyId}`,
        ...(report.settings.length === 0 ? [] : [`re-wrapped sealed settings: ${report.settings.join(', ')}`]),
        `audit: row ${report.audit?.rotation ?? '?'} closes the chain under the old key, row ${report.audit?.anchor ?? '?'} anchors it under the new key`,
        ...(keyFile === null ? [] : [`${keyFile} now holds the new key`]),
        'next: run every instance with the new REKEY_MASTER_KEY (keep REKEY_MASTER_KEY_PREV a few minutes, then remove it)',
      ]
    : [`nothing to do: the store is already under master key k:${report.newKeyId}`])
}
