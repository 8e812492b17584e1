/**
 * The working tree's files to scan: git's view when the directory is in a repository
 * (tracked, plus untracked files .gitignore does not exclude), else a walk of the directory.
 * Never node_modules or .git; binaries and huge files are read no further than needed to skip them.
 */
import { promises as fs } from 'node:fs'
import path from 'node:path'
import { gitFiles, gitTopLevel } from './git.ts'

/** Files larger than this are skipped (1 MiB). */
export const MAX_FILE_BYTES = 1024 * 1024

const SKIPPED_DIRS = new Set(['node_modules', '.git'])

/** The files under `root`, relative to it with `/`, and which ones git tracks (null outside a repository). */
export async function listFiles(root: string): Promise<{ files: string[], tracked: Set<string> | null }> {
  if (await gitTopLevel(root) !== null) {
    const { all, tracked } = await gitFiles(root)
    return { files: all.filter((f) => !f.split('/').some((part) => SKIPPED_DIRS.has(part))).sort(), tracked }
  }
  const files: string[] = []
  const walk = async (dir: string, rel: string): Promise<void> => {
    for (const entry of await fs.readdir(dir, { withFileTypes: true })) {
      const relPath = rel === '' ? entry.name : `${rel}/${entry.name}`
      // Symbolic links are not followed: they may point anywhere, or in a loop.
      if (entry.isDirectory() && !SKIPPED_DIRS.has(entry.name)) await walk(path.join(dir, entry.name), relPath)
      else if (entry.isFile()) files.push(relPath)
    }
  }
  await walk(root, '')
  return { files: files.sort(), tracked: null }
}

/** A file's text, or null when it is missing, not a regular file, over the size limit, or binary. */
export async function readText(file: string): Promise<string | null> {
  let handle: fs.FileHandle
  try {
    // A symbolic link is skipped, not followed: its target may be outside the tree.
    if (!(await fs.lstat(file)).isFile()) return null
    handle = await fs.open(file, 'r')
  } catch {
    return null // deleted since listed, unreadable
  }
  try {
    const stat = await handle.stat()
    if (!stat.isFile() || stat.size > MAX_FILE_BYTES) return null
    const bytes = await handle.readFile()
    // A NUL byte in the first 8 KiB marks a binary, as git decides.
    if (bytes.subarray(0, 8192).includes(0)) return null
    return bytes.toString('utf8')
  } finally {
    await handle.close()
  }
}
