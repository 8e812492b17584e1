/**
 * The store location, resolved in one place for `rekey serve` and every command:
 *
 * 1. `--store`;
 * 2. `REKEY_STORE` of the environment;
 * 3. in env-file mode, the file's own `REKEY_STORE` (a relative path is relative to the file);
 * 4. `store` in `rekey.config.json`;
 * 5. in env-file mode, `.rekey/rekey.db` beside the file;
 * 6. `./.rekey/rekey.db`.
 *
 * A location that is neither a `postgres://`/`postgresql://` URL nor a file path is refused
 * with a did-you-mean (see `store/location.ts`), wherever it came from.
 */
import { lstatSync } from 'node:fs'
import path from 'node:path'
import type { Env } from '../core/env.ts'
import { isPostgresLocation, storeLocationProblem } from '../store/location.ts'

export { isPostgresLocation }

/** The embedded default. */
export const DEFAULT_STORE = './.rekey/rekey.db'

/** Where {@link resolveStoreLocation} looks. */
export interface StoreLocationSources {
  /** `--store`. */
  readonly flag?: string | undefined
  /** The process environment (REKEY_STORE). */
  readonly env: Env
  /** `--env-file`, and the variables it holds. */
  readonly envFile?: string | undefined
  readonly envFileVars?: Readonly<Record<string, string>> | undefined
  /** `store` of the config file, as read (not yet checked), and the file's name. */
  readonly configFile?: { readonly path: string, readonly store: unknown } | null | undefined
}

/** A resolved location and where it came from (for messages). */
export interface StoreLocation {
  readonly location: string
  readonly from: string
  /** Why the location is refused, prefixed with where it came from; absent when it is fine. */
  readonly problem?: string
}

const given = (value: unknown): value is string => typeof value === 'string' && value.trim() !== ''

function found(location: string, from: string): StoreLocation {
  const problem = storeLocationProblem(location)
  return problem === undefined ? { location, from } : { location, from, problem: `${from} ${problem}` }
}

/**
 * Why rekey's own directory (`.rekey/`, which it creates for the default store and its
 * master.key) cannot be used: a symbolic link there is not followed, since the sealed keys
 * would go wherever it points. Undefined when it is a directory or does not exist yet.
 */
function ownDirectoryProblem(dir: string): string | undefined {
  let stats
  try {
    stats = lstatSync(dir)
  } catch {
    return undefined
  }
  const instead = 'remove it, or name the store with --store or REKEY_STORE'
  if (stats.isSymbolicLink()) return `${dir} is a symbolic link: rekey does not follow a link to the directory it keeps its store and master.key in; ${instead}`
  if (!stats.isDirectory()) return `${dir} is not a directory: rekey keeps its store and master.key there; ${instead}`
  return undefined
}

/** A default location, inside `.rekey/` of `dir`. */
function defaultIn(dir: string, from: string): StoreLocation {
  const location = dir === '.' ? DEFAULT_STORE : path.join(dir, '.rekey', 'rekey.db')
  const problem = ownDirectoryProblem(path.join(dir, '.rekey'))
  return problem === undefined ? found(location, from) : { location, from, problem: `${from}: ${problem}` }
}

/** The store location by the precedence above; check `problem` before using it. */
export function resolveStoreLocation(sources: StoreLocationSources): StoreLocation {
  // Trimmed like every other source: " postgres://..." must not become a directory named so.
  if (sources.flag !== undefined) return found(sources.flag.trim(), '--store')
  const env = sources.env.REKEY_STORE
  if (given(env)) return found(env.trim(), 'REKEY_STORE')
  const dir = sources.envFile === undefined ? undefined : path.dirname(path.resolve(sources.envFile))
  const own = sources.envFileVars?.REKEY_STORE
  if (dir !== undefined && given(own)) {
    const from = `REKEY_STORE of ${sources.envFile}`
    // Checked before it is made relative to the file: resolved, "postgress://x" is a path.
    const ownProblem = storeLocationProblem(own.trim())
    if (ownProblem !== undefined) return { location: own.trim(), from, problem: `${from} ${ownProblem}` }
    return found(isPostgresLocation(own.trim()) ? own.trim() : path.resolve(dir, own.trim()), from)
  }
  const file = sources.configFile
  if (file !== undefined && file !== null && file.store !== undefined) {
    const from = `${file.path} "store"`
    if (!given(file.store)) return { location: DEFAULT_STORE, from, problem: `${from} must be a non-empty string` }
    return found(file.store.trim(), from)
  }
  if (dir !== undefined) return defaultIn(dir, `the default beside ${sources.envFile}`)
  return defaultIn('.', 'the default')
}
