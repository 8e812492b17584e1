/**
 * The `master.key` beside a restored SQLite store. A store restored from a backup made before
 * a master-key rotation needs the key it was made under (the one the restore was given, as
 * the archive's MAC proves); a `master.key` beside it holding the newer key would make the
 * next `rekey serve` fail and `rekey audit --verify` report the chain broken at row 1.
 *
 * So a restore that was given another key than the file holds replaces the file atomically
 * (0600) with that key, and keeps the previous file as `master.key.pre-restore-<stamp>` (0600),
 * the key of the replaced store it keeps as `<store>.pre-restore-<stamp>`. A store with no
 * `master.key` beside it gets none: its key lives elsewhere (REKEY_MASTER_KEY), by choice.
 */
import { constants, existsSync, promises as fs } from 'node:fs'
import { masterKeyFileOf, readMasterKeyFile } from '../../config/master-key.ts'
import { writeSecretFileAtomic } from '../../config/env-file.ts'
import { secretEquals } from '../../core/constant-time.ts'
import { masterKeyId } from '../../service/audit/segments.ts'

/** What a restore found beside the store, or did there. Paths only, never a key. */
export type MasterKeyFile =
  | { readonly state: 'matches', readonly file: string }
  | { readonly state: 'replaced', readonly file: string, readonly kept: string }
  | { readonly state: 'absent', readonly file: string }
  | { readonly state: 'none' }

/** Which master key the restored store needs (its id) and what was done with `master.key`. */
export interface RestoredMasterKey {
  readonly id: string
  readonly file: MasterKeyFile
}

/**
 * Makes the `master.key` beside the SQLite store at `storePath` hold `masterKey`, the key the
 * restore was given, keeping a different previous one as `master.key.pre-restore-<stamp>`.
 */
export async function alignMasterKeyFile(storePath: string, masterKey: Buffer, stamp: string): Promise<RestoredMasterKey> {
  const id = masterKeyId(masterKey)
  const file = masterKeyFileOf(storePath)
  if (!existsSync(file)) return { id, file: { state: 'absent', file } }
  // A file that holds no key at all is replaced too (and kept, for whoever looks at it).
  const current = await readMasterKeyFile(file).catch(() => null)
  if (current !== null && secretEquals(current, masterKey)) return { id, file: { state: 'matches', file } }
  const kept = `${file}.pre-restore-${stamp}`
  await fs.copyFile(file, kept, constants.COPYFILE_EXCL)
  await fs.chmod(kept, 0o600)
  await writeSecretFileAtomic(file, `${masterKey.toString('base64')}\n`)
  return { id, file: { state: 'replaced', file, kept } }
}

/** The key a PostgreSQL store needs: no file beside it, every instance's REKEY_MASTER_KEY. */
export function postgresMasterKey(masterKey: Buffer): RestoredMasterKey {
  return { id: masterKeyId(masterKey), file: { state: 'none' } }
}
