/**
 * Loading the service configuration: the environment, an optional `rekey.config.json`
 * and CLI flags, checked against {@link SETTINGS} once, every problem reported together
 * in one `ERR_CONFIG`, then frozen.
 */
import { readFileSync } from 'node:fs'
import path from 'node:path'
import { RekeyError } from '../core/errors.ts'
import { Keyring } from '../core/keyring.ts'
import type { Env } from '../core/env.ts'
import { SecretValue } from './secret-value.ts'
import { SETTINGS, SettingProblem, type RawValue, type SettingSpec, type SettingsConfig } from './schema.ts'
import { isPostgresLocation, resolveStoreLocation } from './store-location.ts'

export { isPostgresLocation }

/** Where keys come from: the JWT_* environment conventions, or the store (managed mode). */
export type KeySource = 'env' | 'managed'

/**
 * The validated, frozen settings of `rekey serve`: one field per setting of {@link SETTINGS}
 * (durations in seconds, secrets as `SecretValue`, derived from the table so the two cannot
 * drift), plus what loading derives.
 */
export type RekeyConfig = SettingsConfig & {
  readonly keySource: KeySource
  /** The config file read, or `null`. */
  readonly configFile: string | null
  /** `--env-file`, when the store and the master key were also looked for there. */
  readonly envFile?: string
}

/** What {@link loadConfig} reads. */
export interface LoadConfigOptions {
  /** Default `process.env`. */
  env?: Env
  /** Where `rekey.config.json` is looked for. Default `process.cwd()`. */
  cwd?: string
  /** An explicit config file (`--config`); it must exist. */
  configFile?: string
  /** CLI flags, by the schema's flag names (`port`, `host`, `store`). */
  flags?: Readonly<Record<string, string | number | undefined>>
  /** Settings to force, by path (`argon2.memoryCost`), after everything else: for tests. */
  overrides?: Readonly<Record<string, unknown>>
  /** `--env-file`: its REKEY_STORE and REKEY_MASTER_KEY(_PREV) count (under the environment's), and the default store is beside it. */
  envFile?: string
  /** The variables of `envFile`, already read. */
  envFileVars?: Readonly<Record<string, string>>
  /**
   * `serve` (default) checks everything the service needs; `command` (the CLI's other commands)
   * skips the JWT_* keys of the environment and leaves the master key to the commands that need it.
   */
  scope?: 'serve' | 'command'
}

/** The variables whose presence selects env mode for keys. */
export const ENV_KEY_VARIABLES: readonly string[] = Object.freeze([
  'JWT_SECRET', 'JWT_SECRET_PREV', 'JWT_SECRET_CURRENT', 'JWT_SECRET_NEW', 'JWT_SECRET_ROTATION_DATE',
  'JWT_ACCESS_SECRET', 'JWT_ACCESS_SECRET_PREV', 'JWT_REFRESH_SECRET', 'JWT_REFRESH_SECRET_PREV', 'JWT_KEYS',
])

/** True when the environment holds JWT keys (env mode); else keys are managed in the store. */
export function keySourceOf(env: Env): KeySource {
  return ENV_KEY_VARIABLES.some((name) => (env[name] ?? '') !== '') ? 'env' : 'managed'
}

function readFileSettings(file: string, explicit: boolean, problems: string[]): Record<string, RawValue> | null {
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' && !explicit) return null
    problems.push(`${file}: cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`)
    return null
  }
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch {
    problems.push(`${file}: not valid JSON`)
    return null
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    problems.push(`${file}: must hold a JSON object`)
    return null
  }
  // Flatten one level of nesting into dotted keys, as the schema names them.
  const flat: Record<string, RawValue> = {}
  for (const [key, value] of Object.entries(parsed as Record<string, unknown>)) {
    if (key === '$schema') continue
    // Keys of "cadence" are secret names, not settings: it is parsed as one value.
    if (key === 'cadence') {
      flat[key] = value as RawValue
      continue
    }
    if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
      for (const [inner, v] of Object.entries(value as Record<string, unknown>)) flat[`${key}.${inner}`] = v as RawValue
    } else {
      flat[key] = value as RawValue
    }
  }
  const known = new Set(SETTINGS.map((s) => s.file).filter((f) => f !== undefined))
  for (const key of Object.keys(flat)) {
    if (known.has(key)) continue
    const secret = SETTINGS.find((s) => s.secret === true && s.path === key)
    problems.push(secret === undefined
      ? `${file}: unknown setting "${key}"`
      : `${file}: "${key}" is a secret and is read from ${secret.env} only, never from a file`)
  }
  return flat
}

function setPath(target: Record<string, unknown>, dotted: string, value: unknown): void {
  const parts = dotted.split('.')
  let node = target
  for (const part of parts.slice(0, -1)) {
    node[part] ??= {}
    node = node[part] as Record<string, unknown>
  }
  node[parts[parts.length - 1] as string] = value
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !(value instanceof SecretValue)) {
    for (const inner of Object.values(value)) deepFreeze(inner)
    Object.freeze(value)
  }
  return value
}

function resolve(spec: SettingSpec, sources: { flags: LoadConfigOptions['flags'], env: Env, file: Record<string, RawValue> | null, fileName: string }):
{ raw: RawValue, from: string, origin: string } | undefined {
  const flag = spec.flag === undefined ? undefined : sources.flags?.[spec.flag]
  if (flag !== undefined) return { raw: flag, from: `--${spec.flag}`, origin: `--${spec.flag}` }
  const envValue = spec.env === undefined ? undefined : sources.env[spec.env]
  if (envValue !== undefined && envValue !== '') return { raw: envValue, from: spec.env as string, origin: spec.env as string }
  const fallback = spec.envFallback === undefined ? undefined : sources.env[spec.envFallback]
  if (fallback !== undefined && fallback !== '') return { raw: fallback, from: spec.envFallback as string, origin: spec.envFallback as string }
  const fileValue = spec.file === undefined || sources.file === null ? undefined : sources.file[spec.file]
  if (fileValue !== undefined) return { raw: fileValue, from: `${sources.fileName} "${spec.file}"`, origin: sources.fileName }
  return undefined
}

/**
 * Reads and checks every setting. Throws one `RekeyError` `ERR_CONFIG` whose `problems` list
 * every problem found (no value is ever echoed); returns a deeply frozen config.
 */
export function loadConfig(options: LoadConfigOptions = {}): RekeyConfig {
  const env = options.env ?? process.env
  const problems: string[] = []
  const explicit = options.configFile !== undefined
  const fileName = path.resolve(options.cwd ?? process.cwd(), options.configFile ?? 'rekey.config.json')
  const file = readFileSettings(fileName, explicit, problems)
  const out: Record<string, unknown> = {}
  const fileVars = options.envFile === undefined ? {} : options.envFileVars ?? {}
  // In env-file mode the master keys may come from the file, under the environment's.
  const keyEnv: Env = { REKEY_MASTER_KEY: fileVars.REKEY_MASTER_KEY, REKEY_MASTER_KEY_PREV: fileVars.REKEY_MASTER_KEY_PREV }
  for (const [name, value] of Object.entries(env)) if (value !== undefined && value !== '') keyEnv[name] = value

  for (const spec of SETTINGS) {
    if (spec.path === 'store') {
      // One resolver for every command: flag, REKEY_STORE, the env file, the config file, the defaults.
      const store = resolveStoreLocation({
        flag: options.flags?.store === undefined ? undefined : String(options.flags.store),
        env, envFile: options.envFile, envFileVars: fileVars,
        configFile: file === null ? null : { path: fileName, store: file.store },
      })
      if (store.problem !== undefined) problems.push(store.problem)
      out.store = store.location
      continue
    }
    const found = resolve(spec, { flags: options.flags, env: keyEnv, file, fileName })
    let value: unknown = spec.default
    if (found !== undefined) {
      try {
        value = spec.parse(found.raw)
      } catch (err) {
        if (!(err instanceof SettingProblem)) throw err
        problems.push(err.namesSetting ? `${found.origin}: ${err.message}` : `${found.from} ${err.message}`)
      }
    }
    if (spec.secret === true && value !== undefined) value = new SecretValue(value as Buffer | string)
    setPath(out, spec.path, value)
  }
  if (options.overrides !== undefined) {
    for (const [dotted, value] of Object.entries(options.overrides)) setPath(out, dotted, value)
  }

  const config = out as unknown as Omit<RekeyConfig, 'keySource' | 'configFile'>
  if (config.refreshOverlap >= config.refreshTokenTtl) problems.push('REKEY_REFRESH_OVERLAP must be shorter than JWT_REFRESH_EXPIRATION')
  if (config.accessTokenTtl > config.refreshTokenTtl) problems.push('JWT_EXPIRATION must not be longer than JWT_REFRESH_EXPIRATION')
  const serve = options.scope !== 'command'
  if (serve && isPostgresLocation(config.store) && config.masterKey === undefined) {
    problems.push('REKEY_MASTER_KEY is required with a PostgreSQL store: every instance must share it (generate one with `rekey gen --encoding base64`)')
  }

  const keySource = keySourceOf(env)
  if (serve && keySource === 'env') {
    // Env-mode keys are part of the configuration: their problems join the same report.
    // JWT_EXPIRATION and JWT_REFRESH_EXPIRATION are validated once, by the schema above: the
    // keyring is asked about the keys only.
    const keysOnly: Env = { ...env, JWT_EXPIRATION: undefined, JWT_REFRESH_EXPIRATION: undefined }
    const kids: Partial<Record<'access' | 'refresh', Set<string>>> = {}
    for (const purpose of ['access', 'refresh'] as const) {
      try {
        kids[purpose] = new Set(Keyring.fromEnv(keysOnly, { purpose }).list().map((key) => key.kid))
      } catch (err) {
        if (!(err instanceof RekeyError)) throw err
        for (const p of err.problems.length > 0 ? err.problems : [err.message]) {
          if (!problems.includes(p)) problems.push(p)
        }
      }
    }
    // Kids derive from the secrets: a shared kid is a shared secret, and a refresh token would then
    // verify as an access token wherever only the signature is checked.
    const access = kids.access
    if (access !== undefined && kids.refresh !== undefined && [...kids.refresh].some((kid) => access.has(kid))) {
      problems.push('the refresh secret (JWT_REFRESH_SECRET or its _PREV) equals an access secret: give each purpose its own secret (generate one with `rekey gen`)')
    }
  }

  if (problems.length > 0) {
    throw new RekeyError('ERR_CONFIG', `Invalid configuration:\n  - ${problems.join('\n  - ')}`, { problems })
  }
  return deepFreeze({ ...config, keySource, configFile: file === null ? null : fileName, ...(options.envFile === undefined ? {} : { envFile: options.envFile }) })
}
