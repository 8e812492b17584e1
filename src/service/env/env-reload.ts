/**
 * Env-file key reload for `rekey --env-file PATH serve`: the service's JWT variables come
 * from the file, and a change to it (SIGHUP, or the file changing on disk) swaps the keys of
 * the running keyrings in place, so verifiers holding those keyrings stay valid and no
 * request is dropped. A file that does not parse into valid keys is logged (problems only,
 * never a value) and the keys in memory stay as they were.
 *
 * The file is watched through its directory, not the file itself: `rekey rotate` and most
 * editors replace the file by renaming a new one over it, which a watch on the old inode
 * would miss.
 */
import { createHash } from 'node:crypto'
import { watch, type FSWatcher } from 'node:fs'
import path from 'node:path'
import { ENV_KEY_VARIABLES } from '../../config/load.ts'
import { readEnvKeys, type Env } from '../../core/env.ts'
import { RekeyError } from '../../core/errors.ts'
import type { KeyInput } from '../../core/key.ts'
import { Keyring } from '../../core/keyring.ts'
import { readEnvFile } from '../../config/env-file.ts'

/** Quiet time after the last change in the directory before the file is read, ms (100). */
export const DEFAULT_DEBOUNCE_MS = 100
/** Longest a stream of changes can delay a reload, ms (1000). */
const MAX_DELAY_MS = 1000

/**
 * The environment `serve` runs with under `--env-file`: `base` (the process environment)
 * with every `JWT_*` variable of the file over it. The key variables (JWT_SECRET, ...) come
 * from the file only: one left in the process environment (say by systemd's
 * `EnvironmentFile=` at start) would otherwise bring back a key the file has dropped.
 */
export function envWithFile(base: Env, fileVars: Readonly<Record<string, string>>): Env {
  const env: Env = {}
  for (const [name, value] of Object.entries(base)) if (!ENV_KEY_VARIABLES.includes(name)) env[name] = value
  for (const [name, value] of Object.entries(fileVars)) if (name.startsWith('JWT_')) env[name] = value
  return env
}

/** Reads the env file for `serve`; ERR_CONFIG when it does not exist. */
export async function readServeEnv(file: string, base: Env): Promise<Env> {
  const { env, exists } = await readEnvFile(file)
  if (!exists) throw new RekeyError('ERR_CONFIG', `--env-file ${file} does not exist`)
  return envWithFile(base, env)
}

/** A digest of the key variables: tells a real change from a touch, without keeping the values. */
function fingerprint(env: Env): string {
  const hash = createHash('sha256')
  for (const name of Object.keys(env).filter((n) => n.startsWith('JWT_')).sort()) hash.update(`${name}\0${env[name] ?? ''}\0`)
  return hash.digest('hex')
}

/** What a reload did. */
export type ReloadOutcome = 'reloaded' | 'unchanged' | 'failed'

/** What {@link EnvFileReloader} needs: the file, the process environment, the running keyrings, a logger. */
export interface EnvFileReloaderOptions {
  readonly file: string
  /** The process environment the file's variables go over. */
  readonly baseEnv: Env
  /** The environment the keyrings were built from (what `readServeEnv` returned at start). */
  readonly startEnv: Env
  readonly keys: { readonly access: Keyring, readonly refresh: Keyring }
  readonly log: { info(obj: object, msg: string): void, warn(obj: object, msg: string): void, error(obj: object, msg: string): void }
  /** Default {@link DEFAULT_DEBOUNCE_MS}. */
  readonly debounceMs?: number
}

/** Re-reads the env file on demand (SIGHUP) or when it changes, and updates the keyrings in place. */
export class EnvFileReloader {
  readonly #options: EnvFileReloaderOptions
  readonly #dir: string
  readonly #name: string
  #fingerprint: string
  #inputs: { access: KeyInput[], refresh: KeyInput[] }
  #watcher: FSWatcher | null = null
  #timer: NodeJS.Timeout | null = null
  #firstEventAt = 0
  #running: Promise<ReloadOutcome> | null = null
  #again: Promise<ReloadOutcome> | null = null
  #closed = false

  constructor(options: EnvFileReloaderOptions) {
    this.#options = options
    const resolved = path.resolve(options.file)
    this.#dir = path.dirname(resolved)
    this.#name = path.basename(resolved)
    this.#fingerprint = fingerprint(options.startEnv)
    this.#inputs = { access: readEnvKeys(options.startEnv, 'access').keys, refresh: readEnvKeys(options.startEnv, 'refresh').keys }
  }

  /** Starts watching the file's directory. A failure to watch is logged: SIGHUP still works. */
  watch(): void {
    if (this.#watcher !== null || this.#closed) return
    try {
      this.#watcher = watch(this.#dir, { persistent: false }, (_event, filename) => {
        // rekey's own temp files and backup beside the file say nothing about the file itself.
        if (filename !== null && (filename === `${this.#name}.bak` || (filename.startsWith(`.${this.#name}.`) && filename.endsWith('.tmp')))) return
        this.#schedule()
      })
      this.#watcher.on('error', (err) => {
        this.#options.log.warn({ file: this.#options.file, err: { message: err.message } }, 'watching the env file failed; reload with SIGHUP')
        this.#watcher?.close()
        this.#watcher = null
      })
    } catch (err) {
      this.#options.log.warn({ file: this.#options.file, err: { message: (err as Error).message } }, 'cannot watch the env file; reload with SIGHUP')
    }
  }

  /** Trailing debounce, but never more than {@link MAX_DELAY_MS} after the first change. */
  #schedule(): void {
    const now = Date.now()
    if (this.#timer === null) this.#firstEventAt = now
    else clearTimeout(this.#timer)
    const delay = Math.min(this.#options.debounceMs ?? DEFAULT_DEBOUNCE_MS, Math.max(0, this.#firstEventAt + MAX_DELAY_MS - now))
    this.#timer = setTimeout(() => {
      this.#timer = null
      void this.reload('file change')
    }, delay)
    this.#timer.unref()
  }

  /** Re-reads the file and swaps the keys when they changed; concurrent calls coalesce. Never throws. */
  reload(trigger: string): Promise<ReloadOutcome> {
    if (this.#running !== null) {
      this.#again ??= this.#running.then(() => {
        this.#again = null
        return this.reload(trigger)
      })
      return this.#again
    }
    this.#running = this.#load(trigger).finally(() => { this.#running = null })
    return this.#running
  }

  async #load(trigger: string): Promise<ReloadOutcome> {
    const { file, log } = this.#options
    let env: Env
    try {
      env = await readServeEnv(file, this.#options.baseEnv)
      // Both purposes are checked, every problem reported at once, before either keyring changes.
      Keyring.fromEnv(env, { purpose: 'access' })
      Keyring.fromEnv(env, { purpose: 'refresh' })
    } catch (err) {
      const problems = err instanceof RekeyError && err.problems.length > 0 ? err.problems : [(err as Error).message]
      log.error({ file, trigger, problems }, 'the env file has no valid keys; keeping the keys loaded')
      return 'failed'
    }
    const print = fingerprint(env)
    if (print === this.#fingerprint) return 'unchanged'
    const inputs = { access: readEnvKeys(env, 'access').keys, refresh: readEnvKeys(env, 'refresh').keys }
    const { access, refresh } = this.#options.keys
    try {
      access.update(inputs.access)
      try {
        refresh.update(inputs.refresh)
      } catch (err) {
        access.update(this.#inputs.access)
        throw err
      }
    } catch (err) {
      const problems = err instanceof RekeyError && err.problems.length > 0 ? err.problems : [(err as Error).message]
      log.error({ file, trigger, problems }, 'the env file keys were refused; keeping the keys loaded')
      return 'failed'
    }
    this.#inputs = inputs
    this.#fingerprint = print
    log.info({
      file, trigger,
      access: { current: access.currentKid, keys: access.list().map((k) => `${k.kid}:${k.state}`) },
      refresh: { current: refresh.currentKid, keys: refresh.list().map((k) => `${k.kid}:${k.state}`) },
    }, 'keys reloaded from the env file')
    return 'reloaded'
  }

  /** Stops watching; a reload in flight finishes. */
  close(): void {
    this.#closed = true
    if (this.#timer !== null) clearTimeout(this.#timer)
    this.#timer = null
    this.#watcher?.close()
    this.#watcher = null
  }
}
