/**
 * Temporary directories whose owner is known, and the removal of those a dead run left.
 *
 * A backup, a drill or a restore decrypts the whole store into a temporary directory. A
 * signal removes it (`interrupt-cleanup.ts`); a kill -9 cannot be caught, so the directory is
 * named `rekey-backup-<host>-<pid>-XXXXXX` and every later run on this host removes those
 * whose process is gone. A directory of a live process (or of another host sharing the
 * directory) is never touched.
 */
import { mkdtempSync, promises as fs, readdirSync, statSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { processAlive } from '../../service/data-keys/rewrap-lock.ts'
import { onInterrupt } from './interrupt-cleanup.ts'

const PREFIX = 'rekey-backup-'

/** This host's name as it appears in a directory name: letters, digits and `-` only. */
function hostTag(): string {
  return os.hostname().replace(/[^A-Za-z0-9-]/g, '-').slice(0, 40) || 'host'
}

/** `<tmp>/rekey-backup-<host>-<pid>-XXXXXX`, 0700, removed on an interrupt until `release`. */
export function makeOwnedTempDir(): { dir: string, release: () => void } {
  const dir = mkdtempSync(path.join(os.tmpdir(), `${PREFIX}${hostTag()}-${process.pid}-`))
  const release = onInterrupt(dir, () => fs.rm(dir, { recursive: true, force: true }))
  return { dir, release }
}

/**
 * Removes the temporary directories of this host's dead rekey runs (owned by this user) and
 * returns their paths. Directories of other hosts, of live processes, of other users, and the
 * unnamed ones of older versions (`rekey-backup-XXXXXX`) are left alone.
 */
export async function removeDeadTempDirs(tmp: string = os.tmpdir()): Promise<string[]> {
  const owner = new RegExp(`^${PREFIX}${hostTag()}-(\\d+)-[A-Za-z0-9]{6}$`)
  const uid = process.getuid?.()
  const removed: string[] = []
  let names: string[]
  try {
    names = readdirSync(tmp)
  } catch {
    return removed
  }
  for (const name of names) {
    const pid = Number(owner.exec(name)?.[1] ?? NaN)
    if (!Number.isSafeInteger(pid) || pid === process.pid || processAlive(pid)) continue
    const dir = path.join(tmp, name)
    try {
      const stat = statSync(dir, { throwIfNoEntry: false })
      if (stat === undefined || !stat.isDirectory() || (uid !== undefined && stat.uid !== uid)) continue
      await fs.rm(dir, { recursive: true, force: true })
      removed.push(dir)
    } catch {
      // Another run removed it first, or it cannot be removed: the next run tries again.
    }
  }
  return removed
}
