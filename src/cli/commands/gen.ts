import { InvalidArgumentError, type Command } from 'commander'
import { existsSync } from 'node:fs'
import { readEnvKeys } from '../../core/env.ts'
import { generateSecret } from '../../core/secret.ts'
import { CliExit, EXIT, type CliIo, type GlobalOptions } from '../context.ts'
import { applyEnvGen } from '../env-mode.ts'
import { newEnvFileNote } from '../created-files-note.ts'
import { commandConfig } from '../audit-store.ts'
import { resolveMasterKey } from '../../config/master-key.ts'
import { dataKeyAccessKey } from '../../service/keys/keys.ts'

interface GenOptions {
  bytes: number
  encoding: 'hex' | 'base64' | 'base64url'
  var?: string
  force?: boolean
  dataKeyAccess?: boolean
}

/**
 * `--data-key-access`: the key the store's managed data keys open with (derived from its
 * master key, base64), for applications that use `Cipher.fromStore` without the master key.
 */
async function dataKeyAccessSecret(io: CliIo, globals: GlobalOptions): Promise<string> {
  const config = await commandConfig(io, globals)
  const { key } = await resolveMasterKey(config)
  return dataKeyAccessKey(key).toString('base64')
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
      })
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
