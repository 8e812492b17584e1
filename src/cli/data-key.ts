/**
 * The CLI side of the data key (ENCRYPTION_KEY): the cipher a command uses, the counted
 * evidence in rekey's store, and the guards that refuse `rotate --hard` and `finalize`
 * while values of a key being dropped remain.
 */
import { Cipher } from '../core/cipher.ts'
import { kidOfText } from '../core/data-keys.ts'
import { finalizeDataKeyProblems, hardRotateDataKeyProblems } from '../core/data-key-rules.ts'
import { RekeyError } from '../core/errors.ts'
import { openAppTable, isPostgresUrl } from '../ops/rewrap/app-table.ts'
import { readColumns, recordColumn, type ColumnRecord } from '../service/data-keys/crypt-columns.ts'
import { maskLocation } from '../store/errors.ts'
import { commandConfig, envFileVars, openForRead, openForWrite, withStore } from './audit-store.ts'
import { CliExit, EXIT, type CliIo, type GlobalOptions } from './context.ts'

/** The `--secret` names of the data key. */
export function isDataKeySecret(name: string | undefined): boolean {
  return name === 'ENCRYPTION_KEY'
}

/** Refuses the data key in managed mode, which keeps only signing keys in this version. */
export function requireDataKeyEnvFile(globals: GlobalOptions): void {
  if (globals.envFile === undefined) {
    throw new CliExit(EXIT.USAGE, '--secret ENCRYPTION_KEY is rotated in env-file mode (rekey --env-file .env rotate --secret ENCRYPTION_KEY): managed data keys are not available in this version')
  }
}

const has = (vars: Readonly<Record<string, string | undefined>>, name: string): boolean => vars[name] !== undefined && vars[name] !== ''

/** The environment the data keys come from: the env file when it holds them, else the process. */
export function dataKeyEnv(io: CliIo, fileVars: Readonly<Record<string, string>>): Record<string, string | undefined> {
  const inFile = has(fileVars, 'ENCRYPTION_KEY') || has(fileVars, 'ENCRYPTION_KEYS')
  return inFile ? { REKEY_ALLOW_WEAK_SECRETS: io.env.REKEY_ALLOW_WEAK_SECRETS, ...fileVars } : io.env
}

/** The cipher of the command's environment; its warnings go to stderr. */
export function cliCipher(io: CliIo, fileVars: Readonly<Record<string, string>>): Cipher {
  return Cipher.fromEnv(dataKeyEnv(io, fileVars), { onWarning: (message) => io.stderr(`rekey: warning: ${message}\n`) })
}

/** The registered columns and their last counts; none when the store does not exist yet. */
export async function dataKeyEvidence(io: CliIo, globals: GlobalOptions, fileVars: Readonly<Record<string, string>>): Promise<ColumnRecord[]> {
  const store = await openForRead((await commandConfig(io, globals, fileVars)).store)
  if (store === null) return []
  return withStore(store, readColumns)
}

/** `rotate --secret ENCRYPTION_KEY --hard`: refused while a registered column holds values of the keys it drops. */
export async function guardDataKeyRotate(io: CliIo, globals: GlobalOptions, hard: boolean): Promise<void> {
  requireDataKeyEnvFile(globals)
  if (!hard) return
  const vars = await envFileVars(globals)
  const dropped = ['ENCRYPTION_KEY', 'ENCRYPTION_KEY_PREV'].filter((v) => has(vars, v)).map((v) => kidOfText(vars[v] as string))
  if (dropped.length === 0) return
  const columns = await recountColumns(io, globals, vars, await dataKeyEvidence(io, globals, vars), dropped[0] as string)
  const problems = hardRotateDataKeyProblems(columns, dropped)
  if (problems.length > 0) {
    throw new RekeyError('ERR_UNSAFE', `rotate --hard of ENCRYPTION_KEY refused: ${problems.join('; ')}. Rotate without --hard, rewrap, then finalize`)
  }
}

/**
 * The URL that reaches a registered column now: a SQLite path or a password-less URL as
 * recorded, else a PostgreSQL URL from the env file or the environment whose masked form is
 * the recorded one (the password is never stored). Undefined when none is known.
 */
function reachableUrl(database: string, envs: ReadonlyArray<Readonly<Record<string, string | undefined>>>): string | undefined {
  if (!isPostgresUrl(database)) return database
  if (!database.includes('***')) return database
  for (const env of envs) {
    for (const value of Object.values(env)) {
      if (value !== undefined && isPostgresUrl(value) && maskLocation(value) === database) return value
    }
  }
  return undefined
}

/**
 * Counts again, now, every registered column rekey can reach, and records the counts; a
 * column it cannot reach keeps its last count (judged with its date). The evidence finalize
 * reads is then as fresh as it can be: a value an old instance wrote after the rewrap counts.
 */
async function recountColumns(io: CliIo, globals: GlobalOptions, vars: Readonly<Record<string, string>>, columns: readonly ColumnRecord[], currentKid: string): Promise<ColumnRecord[]> {
  const out: ColumnRecord[] = []
  const fresh: ColumnRecord[] = []
  for (const c of columns) {
    const url = reachableUrl(c.database, [vars, io.env])
    if (url === undefined) {
      out.push(c)
      continue
    }
    try {
      const table = await openAppTable(url, { table: c.table, column: c.column, keyColumn: c.keyColumn, aadColumns: [] })
      try {
        const counts = await table.countByKid()
        const record = { ...c, ...counts, currentKid, countedAt: new Date().toISOString() }
        out.push(record)
        fresh.push(record)
      } finally {
        await table.close()
      }
    } catch (err) {
      io.stderr(`rekey: warning: could not count ${c.table}.${c.column} again (${err instanceof Error ? err.message : String(err)}): its last count is used\n`)
      out.push(c)
    }
  }
  if (fresh.length > 0) {
    const { store } = await openForWrite(io, await commandConfig(io, globals, vars))
    await withStore(store, (s) => s.transaction(async (tx) => { for (const r of fresh) await recordColumn(tx, r) }))
  }
  return out
}

/** `finalize --secret ENCRYPTION_KEY`: refused while a registered column holds values of ENCRYPTION_KEY_PREV. */
export async function guardDataKeyFinalize(io: CliIo, globals: GlobalOptions, force: boolean): Promise<void> {
  requireDataKeyEnvFile(globals)
  const vars = await envFileVars(globals)
  if (force || !has(vars, 'ENCRYPTION_KEY') || !has(vars, 'ENCRYPTION_KEY_PREV')) return
  const rotatedAt = Date.parse(vars.ENCRYPTION_KEY_ROTATED_AT ?? '')
  const currentKid = kidOfText(vars.ENCRYPTION_KEY as string)
  const columns = await recountColumns(io, globals, vars, await dataKeyEvidence(io, globals, vars), currentKid)
  const problems = finalizeDataKeyProblems(columns, currentKid, kidOfText(vars.ENCRYPTION_KEY_PREV as string), Number.isNaN(rotatedAt) ? undefined : rotatedAt)
  if (problems.length > 0) {
    throw new RekeyError('ERR_UNSAFE', `finalize of ENCRYPTION_KEY refused (ENCRYPTION_KEY_PREV still decrypts values): ${problems.join('; ')}`)
  }
}

/** Status lines of the registered columns: values per key, the key that encrypts marked. */
export function columnLines(columns: readonly ColumnRecord[], keyStates: ReadonlyMap<string, string>): string[] {
  if (columns.length === 0) return []
  const lines = ['encrypted columns (values per data key, as last counted):']
  for (const c of columns) {
    lines.push(`  ${c.table}.${c.column}  ${c.database}  counted ${c.countedAt}`)
    for (const [kid, n] of Object.entries(c.kids).sort((a, b) => b[1] - a[1])) {
      lines.push(`    ${(keyStates.get(kid) ?? (kid === c.currentKid ? 'current' : 'unknown')).padEnd(8)} ${kid}  ${n} value(s)`)
    }
    if (c.other > 0) lines.push(`    ${c.other} value(s) not encrypted by rekey`)
  }
  return lines
}

/** kid -> state of the data keys in an env file. */
export function dataKeyStates(vars: Readonly<Record<string, string>>): Map<string, string> {
  const states = new Map<string, string>()
  if (has(vars, 'ENCRYPTION_KEY')) states.set(kidOfText(vars.ENCRYPTION_KEY as string), 'current')
  if (has(vars, 'ENCRYPTION_KEY_PREV')) states.set(kidOfText(vars.ENCRYPTION_KEY_PREV as string), 'previous')
  return states
}
