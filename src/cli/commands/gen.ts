import { InvalidArgumentError, type Command } from 'commander'
import { existsSync } from 'node:fs'
import { readEnvKeys } from '../../core/env.ts'
import { generateSecret } from '../../core/secret.ts'
import { CliExit, EXIT, type CliIo, type GlobalOptions } from '../context.ts'
import { applyEnvGen } from '../env-mode.ts'
import { newEnvFileNote } from '../created-files-note.ts'
import { commandConfig } from '../audit-store.ts'
import { resolveMasterKey } from '../../config/master-key.ts'
import { dataKeyAccessKey, openDataKeyMaterial } from '../../service/keys/keys.ts'
import { dataKeyRecords } from '../../service/data-keys/managed-data-keys.ts'
import { isRekeyError } from '../../core/errors.ts'
import type { KeyRecord } from '../../store/types.ts'
import { isPostgresLocation } from '../../store/location.ts'
import { maskLocation } from '../../store/errors.ts'
import { openStore } from '../../store/open.ts'

interface GenOptions {
  bytes: number
  encoding: 'hex' | 'base64' | 'base64url'
  var?: string
  force?: boolean
  dataKeyAccess?: boolean
}

/**
 * The variables rekey or an application reads as another secret: `--data-key-access` is never
 * written there (the access key would sign tokens, encrypt values as an ENCRYPTION_KEY, or
 * stand for the master key). A new access key goes in REKEY_DATA_KEY_ACCESS (or _PREV).
 */
const OTHER_SECRETS: ReadonlySet<string> = new Set([
  'JWT_SECRET', 'JWT_SECRET_PREV', 'JWT_SECRET_CURRENT', 'JWT_SECRET_NEW', 'JWT_KEYS',
  'JWT_ACCESS_SECRET', 'JWT_ACCESS_SECRET_PREV', 'JWT_REFRESH_SECRET', 'JWT_REFRESH_SECRET_PREV',
  'ENCRYPTION_KEY', 'ENCRYPTION_KEY_PREV', 'ENCRYPTION_KEYS', 'REKEY_MASTER_KEY', 'REKEY_MASTER_KEY_PREV',
])

/**
 * True when the store holds data keys and `access` opens none of them (a row edited behind
 * rekey's back counts as opening: the key is right, the row is not). Only advice: a store that
 * does not exist yet, or cannot be read now, is not checked.
 */
async function opensNoDataKey(location: string, access: Buffer): Promise<boolean> {
  if (!isPostgresLocation(location) && !existsSync(location)) return false
  let rows: KeyRecord[]
  try {
    const store = await openStore(location, { onError: () => {} })
    try {
      rows = dataKeyRecords(await store.getKeyset())
    } finally {
      await store.close()
    }
  } catch {
    return false
  }
  return rows.length > 0 && !rows.some((row) => {
    try {
      openDataKeyMaterial([access], row)
      return true
    } catch (err) {
      return isRekeyError(err) && err.code === 'ERR_UNSAFE'
    }
  })
}

/**
 * `--data-key-access`: the key the store's managed data keys open with (derived from its
 * master key, base64), for applications that use `Cipher.fromStore` without the master key.
 * When the store's data keys do not open with it (a mistyped REKEY_MASTER_KEY, or the new one
 * before `rekey rotate --secret master-key`, as docs/crypt.md describes), it is still given,
 * with a warning saying so: an application given it would otherwise fail at start.
 */
async function dataKeyAccessSecret(io: CliIo, globals: GlobalOptions): Promise<string> {
  const config = await commandConfig(io, globals)
  const { key } = await resolveMasterKey(config)
  const access = dataKeyAccessKey(key)
  if (await opensNoDataKey(config.store, access)) {
    io.stderr(`rekey: warning: the data keys of ${maskLocation(config.store)} do not open with this access key: REKEY_MASTER_KEY is not the master key they are sealed under (it opens them only after rekey rotate --secret master-key to it)\n`)
  }
  return access.toString('base64')
}

function bytesArg(value: string): number {
  const n = Number(value)
  if (!Number.isInteger(n) || n < 32 || n > 64) throw new InvalidArgumentError('must be an integer from 32 to 64')
  return n
}

/** The env-file rotation of each variable rekey rotates, as `--secret` of `rekey rotate`. */
const ROTATION_OF: Readonly<Record<string, { secret: string | undefined, what: string }>> = {
  JWT_SECRET: { secret: undefined, what: 'every token it signed would be refused' },
  JWT_SECRET_CURRENT: { secret: undefined, what: 'every token it signed would be refused' },
  JWT_SECRET_NEW: { secret: undefined, what: 'every token it signed would be refused' },
  JWT_ACCESS_SECRET: { secret: 'access', what: 'every access token it signed would be refused' },
  JWT_REFRESH_SECRET: { secret: 'refresh', what: 'every refresh token it signed would be refused (every session ends)' },
  ENCRYPTION_KEY: { secret: 'ENCRYPTION_KEY', what: 'every value it encrypted would be unreadable' },
}

function quoteArg(value: string): string {
  return /^[\w./-]+$/.test(value) ? value : `'${value.replace(/'/g, `'\\''`)}'`
}

/**
 * `gen --var NAME` into a file where NAME already holds a live key would replace it at once:
 * every token a JWT key signed refused, every value a data key encrypted unreadable. Refused
 * (`ERR_USAGE`, exit 2) unless `--force`, naming the rotation that keeps the old key working
 * meanwhile. Any other value is replaced, with a warning (the old file is a backup generation).
 */
function checkOverwrite(io: CliIo, file: string, variable: string, current: string | undefined, force: boolean): void {
  if (current === undefined || current === '') return
  const rotation = ROTATION_OF[variable]
  if (rotation === undefined || force) {
    io.stderr(`rekey: warning: replaced the value ${variable} had in ${file} (the old file is kept as a backup generation beside it); whatever uses ${variable} needs the new value\n`)
    return
  }
  const command = `rekey --env ${quoteArg(file)} rotate${rotation.secret === undefined ? '' : ` --secret ${rotation.secret}`}`
  throw new CliExit(EXIT.USAGE, `${variable} already holds a live key in ${file}: gen would replace it at once and ${rotation.what}; rotate it instead (the old key keeps working until finalize): ${command}; or give --force to replace it anyway`)
}

/**
 * `gen --var JWT_ACCESS_SECRET` into a file whose access tokens are signed by a generic secret
 * (`JWT_SECRET`, `JWT_SECRET_CURRENT`/`_NEW`, `JWT_KEYS`) adds a variable the keyring reads
 * first: the new key would sign at once and every access token the old one signed would be
 * refused. Refused (exit 2) unless `--force`, naming the rotation of the key in use.
 */
function checkShadow(file: string, variable: string, env: Readonly<Record<string, string>>, force: boolean): void {
  const before = readEnvKeys(env, 'access')
  if (force || before.keys.length === 0) return
  const after = readEnvKeys({ ...env, [variable]: 'x'.repeat(64) }, 'access')
  if (after.source === before.source) return
  throw new CliExit(EXIT.USAGE, `${variable} would take precedence over ${before.source} in ${file}: the keyring would sign access tokens with the new key at once and refuse every token ${before.source} signed (everyone signed out); rotate the key in use instead (the old key keeps working until finalize): rekey --env ${quoteArg(file)} rotate --secret access; or give --force to add ${variable} anyway`)
}

/** `rekey gen`: a new secret, printed, or written into an env file and not printed. */
export function registerGen(program: Command, io: CliIo): void {
  program
    .command('gen')
    .description('generate a strong secret; with --env (or --env-file) and --var it is written there and not printed')
    .option('--bytes <n>', 'random bytes, 32 to 64', bytesArg, 32)
    .option('--encoding <encoding>', 'hex, base64 or base64url', 'hex')
    .option('--var <name>', 'the variable to set in --env-file')
    .option('--force', 'replace a live key (JWT_SECRET, ENCRYPTION_KEY...) at once; rekey rotate keeps the old one working meanwhile')
    .option('--data-key-access', 'not a new secret: the key the store\'s managed data keys open with (REKEY_DATA_KEY_ACCESS for Cipher.fromStore), derived from its master key; base64')
    .addHelpText('after', '\nExamples:\n  rekey gen\n  rekey gen --bytes 64 --encoding base64url\n  rekey --env .env gen --var JWT_SECRET\n  rekey --env app.env --store .rekey/rekey.db gen --data-key-access --var REKEY_DATA_KEY_ACCESS')
    .action(async (options: GenOptions, command: Command) => {
      const globals = command.optsWithGlobals<GlobalOptions & GenOptions>()
      if (!['hex', 'base64', 'base64url'].includes(options.encoding)) {
        throw new CliExit(EXIT.USAGE, '--encoding must be hex, base64 or base64url')
      }
      const access = options.dataKeyAccess === true
      if (access) {
        const given = (['bytes', 'encoding'] as const).filter((o) => command.getOptionValueSource(o) === 'cli')
        if (given.length > 0) throw new CliExit(EXIT.USAGE, `--data-key-access is not a new secret (always 32 bytes, base64): ${given.map((o) => `--${o}`).join(' and ')} do not apply`)
        if (options.var !== undefined && OTHER_SECRETS.has(options.var)) {
          throw new CliExit(EXIT.USAGE, `--data-key-access is not written to ${options.var}, which holds another secret: write it to REKEY_DATA_KEY_ACCESS (or REKEY_DATA_KEY_ACCESS_PREV during a master-key rollout)`)
        }
      }
      const secret = access ? await dataKeyAccessSecret(io, globals) : generateSecret({ bytes: options.bytes, encoding: options.encoding })
      if (options.var === undefined && globals.envFile === undefined) {
        io.stdout(globals.json === true ? `${JSON.stringify({ secret })}\n` : `${secret}\n`)
        return
      }
      if (options.var === undefined || globals.envFile === undefined) {
        throw new CliExit(EXIT.USAGE, 'give both --env (or --env-file) and --var to write the secret into a file')
      }
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(options.var)) throw new CliExit(EXIT.USAGE, '--var must be a variable name')
      const isNew = !existsSync(globals.envFile)
      const audit = await applyEnvGen(io, globals, options.var, secret, access ? 'the data-key access key of the store' : `new ${options.bytes}-byte ${options.encoding} secret`, (current, env) => {
        checkOverwrite(io, globals.envFile as string, options.var as string, current, options.force === true)
        checkShadow(globals.envFile as string, options.var as string, env, options.force === true)
      }, { rotation: !access })
      const report = access
        ? { file: globals.envFile, variable: options.var, dataKeyAccess: true, audit }
        : { file: globals.envFile, variable: options.var, bytes: options.bytes, encoding: options.encoding, audit }
      io.stdout(globals.json === true ? `${JSON.stringify(report)}\n` : access
        ? `wrote the data-key access key to ${options.var} in ${globals.envFile}\n`
        : `wrote a new ${options.bytes}-byte secret to ${options.var} in ${globals.envFile}\n`)
      // A new file of secrets in a git work tree that does not ignore it: one "git add ." away from publishing it.
      if (isNew) io.stderr(await newEnvFileNote(globals.envFile))
    })
}
