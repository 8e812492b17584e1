/**
 * Backup generations of an env file: `<file>.bak.1` (newest) to `<file>.bak.N`, each 0600,
 * kept beside the file that was rewritten (a symlink's target). A backup holds the secrets
 * of its day, so after a finalize or a hard rotation rekey can name the ones that still hold
 * a retired or revoked secret, and shred them on request.
 */
import { constants, promises as fs } from 'node:fs'
import path from 'node:path'
import { parseEnvDocument, valuesOf } from './env-syntax.ts'

/** Backup generations kept by default: 5. */
export const DEFAULT_ENV_BACKUPS = 5

/** The path of backup generation `n` (1 = newest) of `file`. */
export const backupPathOf = (file: string, n: number): string => `${file}.bak.${n}`

const exists = async (file: string): Promise<boolean> => fs.lstat(file).then(() => true, () => false)

/**
 * Shifts the generations (the oldest beyond `keep` is shredded) and writes `text` as
 * generation 1 with `write` (the atomic secret-file writer). Returns generation 1's path.
 */
export async function rotateBackups(file: string, text: string, keep: number, write: (file: string, text: string) => Promise<void>): Promise<string> {
  const generations = Math.max(1, Math.floor(keep))
  for (let n = generations; n < generations + 50 && await exists(backupPathOf(file, n)); n++) await shredFile(backupPathOf(file, n))
  for (let n = generations - 1; n >= 1; n--) {
    const from = backupPathOf(file, n)
    if (await exists(from)) await fs.rename(from, backupPathOf(file, n + 1))
  }
  const first = backupPathOf(file, 1)
  await write(first, text)
  return first
}

/** Every backup of `file` on disk: the generations, and a `<file>.bak` of older rekey versions. */
export async function listBackups(file: string): Promise<string[]> {
  const dir = path.dirname(file)
  const base = path.basename(file)
  const pattern = new RegExp(`^${base.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\.bak(?:\\.(\\d+))?$`)
  let names: string[]
  try {
    names = await fs.readdir(dir)
  } catch {
    return []
  }
  return names
    .map((name) => ({ name, match: pattern.exec(name) }))
    .filter((x) => x.match !== null)
    .sort((a, b) => Number(a.match?.[1] ?? 0) - Number(b.match?.[1] ?? 0))
    .map((x) => path.join(dir, x.name))
}

/** The backups of `file` that hold any of `secrets` (as a value, or anywhere in their text). */
export async function backupsHolding(file: string, secrets: readonly string[]): Promise<string[]> {
  const wanted = secrets.filter((s) => s !== '')
  if (wanted.length === 0) return []
  const out: string[] = []
  for (const backup of await listBackups(file)) {
    let text: string
    try {
      text = await fs.readFile(backup, 'utf8')
    } catch {
      continue
    }
    const values = new Set(Object.values(valuesOf(parseEnvDocument(text))))
    if (wanted.some((s) => values.has(s) || text.includes(s))) out.push(backup)
  }
  return out
}

/**
 * Overwrites a file with zeros, syncs, then removes it. On copy-on-write or flash storage
 * the old blocks may survive: this removes the file's readable copy, not every trace.
 * Only a regular file with no other name is overwritten: a symbolic link, or a hard link,
 * planted under a backup's name (by whoever can write to the directory) is only removed,
 * never written through, so rekey run as root cannot be made to zero another file.
 */
export async function shredFile(file: string): Promise<void> {
  let handle
  try {
    handle = await fs.open(file, constants.O_RDWR | constants.O_NOFOLLOW)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ELOOP') throw err
    await fs.rm(file)
    return
  }
  try {
    const stat = await handle.stat()
    if (stat.isFile() && stat.nlink === 1) {
      const { size } = stat
      const zeros = Buffer.alloc(Math.min(size, 1 << 16))
      for (let at = 0; at < size; at += zeros.length) await handle.write(zeros, 0, Math.min(zeros.length, size - at), at)
      await handle.sync()
    }
  } finally {
    await handle.close()
  }
  await fs.rm(file)
}
