/**
 * What the first command on a new embedded store created (the SQLite store, its master.key and,
 * in env-file mode, the `.env.bak*` generations), named relative to the project (the env
 * file's folder, else the working directory), with the .gitignore entries that keep exactly
 * those files out of git: a newcomer who commits it all would publish the master key and the
 * old secrets kept in the backups. Never the project folder itself or a parent. When the
 * project has a .gitignore or is in a git work tree, says so if git would NOT ignore them.
 */
import { existsSync, readdirSync } from 'node:fs'
import path from 'node:path'
import { gitIgnored, gitTopLevel } from '../ops/scan/git.ts'

/** `file` relative to `dir`, or `undefined` when it is not inside it. */
function inside(dir: string, file: string): string | undefined {
  const relative = path.relative(dir, file)
  return relative === '' || relative.startsWith('..') || path.isAbsolute(relative) ? undefined : relative
}

/** "a", "a and b", "a, b and c". */
function listed(items: readonly string[]): string {
  return items.length <= 1 ? items.join('') : `${items.slice(0, -1).join(', ')} and ${items.at(-1) as string}`
}

/** Gitignore spelling of a relative path (forward slashes). */
const entry = (relative: string): string => relative.split(path.sep).join('/')

/**
 * Whether `dir` holds only what rekey created there (the store, its SQLite companions, the
 * master key): then the folder itself is the entry to ignore.
 */
function dedicated(project: string, dir: string, store: string, masterKey: string): boolean {
  if (inside(project, dir) === undefined) return false
  const ours = (name: string): boolean => name === path.basename(masterKey) || name.startsWith(path.basename(store))
  try {
    return readdirSync(dir).every(ours)
  } catch {
    return false
  }
}

/** The lines to print on stderr (each ending in a newline). */
export async function createdFilesNote(storePath: string, masterKeyFile: string, envFile: string | undefined, cwd: string = process.cwd()): Promise<string> {
  const project = envFile === undefined ? path.resolve(cwd) : path.dirname(path.resolve(cwd, envFile))
  const store = path.resolve(cwd, storePath)
  const masterKey = path.resolve(cwd, masterKeyFile)
  const shown = (file: string): string => path.relative(cwd, file) || '.'
  const dir = path.dirname(masterKey)
  const storeName = path.basename(store)
  const keyName = path.basename(masterKey)
  const backups = envFile === undefined ? undefined : `${path.basename(envFile)}.bak*`

  const ignore: string[] = []
  let created: string
  if (dedicated(project, dir, store, masterKey)) {
    created = `created ${shown(dir)}/ with ${storeName} (the audit log and rotation inventory) and ${keyName} (its key)`
    ignore.push(`${entry(inside(project, dir) as string)}/`)
  } else {
    created = `created ${shown(store)} (the audit log and rotation inventory) and ${shown(masterKey)} (its key)`
    for (const file of [store, masterKey]) {
      const relative = inside(project, file)
      // SQLite writes `<store>-wal` and `<store>-shm` beside the store while it is open.
      if (relative !== undefined) ignore.push(file === store ? `${entry(relative)}*` : entry(relative))
    }
  }
  if (backups !== undefined) ignore.push(backups)
  const kept = backups === undefined ? '' : `; every rewrite of ${shown(path.resolve(cwd, envFile as string))} keeps the old file as ${backups} (0600, old secrets inside)`
  const advice = ignore.length === 0 ? '' : `. They belong in .gitignore, never in git: ${listed(ignore.map((name) => `"${name}"`))}`
  return `rekey: ${created}${kept}${advice}\n${await notIgnoredWarning(project, [masterKey, store], backups)}`
}

/**
 * The warning for an env file rekey has just created (`gen --var` into a new file): it holds
 * secrets, so it is named when git would NOT ignore it; '' otherwise.
 */
export async function newEnvFileNote(envFile: string, cwd: string = process.cwd()): Promise<string> {
  const file = path.resolve(cwd, envFile)
  return notIgnoredWarning(path.dirname(file), [file], undefined)
}

/**
 * A warning naming the created files git would NOT ignore (checked by name, so the backups
 * that do not exist yet are checked too), when the project uses git; '' otherwise.
 */
async function notIgnoredWarning(project: string, files: readonly string[], backups: string | undefined): Promise<string> {
  const ours = files.filter((file) => inside(project, file) !== undefined)
  const backup = backups === undefined ? undefined : path.join(project, backups.replace(/\*$/, ''))
  if (backup !== undefined) ours.push(backup)
  if (ours.length === 0) return ''
  if (!existsSync(path.join(project, '.gitignore')) && await gitTopLevel(project) === null) return ''
  const ignored = await gitIgnored(project, ours)
  // No git, or git could not tell: nothing is claimed.
  if (ignored === null) return ''
  const exposed = ours.filter((file) => ignored.get(file) === false)
  if (exposed.length === 0) return ''
  const names = exposed.map((file) => file === backup ? backups as string : entry(inside(project, file) as string))
  const them = exposed.length === 1 ? 'it' : 'them'
  return `rekey: warning: ${listed(names)} ${exposed.length === 1 ? 'is' : 'are'} NOT ignored by git (git check-ignore): add ${them} to .gitignore before any "git add", or "git add ." commits ${them}\n`
}
