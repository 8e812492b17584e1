/**
 * The CLI side of the data key (ENCRYPTION_KEY): the cipher a command uses, the counted
 * evidence in rekey's store, and the guards that refuse `rotate --hard` and `finalize`
 * while values of a key being dropped remain.
 */
import { Cipher } from '../core/cipher.ts'
import { kidOfText } from '../core/data-keys.ts'
import { finalizeDataKeyProblems, hardRotateDataKeyProblems, shellWord } from '../core/data-key-rules.ts'
import { RekeyError } from '../core/errors.ts'
import { openAppTable, isPostgresUrl } from '../ops/rewrap/app-table.ts'
import { readColumns, recordColumn, type ColumnRecord } from '../service/data-keys/crypt-columns.ts'
import { maskLocation } from '../store/errors.ts'
import type { Keyset } from '../store/types.ts'
import { resolveMasterKey } from '../config/master-key.ts'
import { DATA_KEY_PURPOSE } from '../core/data-keys.ts'
import { accessKeysOf, dataKeyRecords, dataKeysOf } from '../service/data-keys/managed-data-keys.ts'
import { printReport, withManaged } from './managed.ts'
import { commandConfig, envFileVars, openForRead, openForWrite, withStore } from './audit-store.ts'
import { CliExit, EXIT, type CliIo, type GlobalOptions } from './context.ts'

/** The `--secret` names of the data key. */
export function isDataKeySecret(name: string | undefined): boolean {
  return name === 'ENCRYPTION_KEY'
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

/**
 * The cipher of a command that reads or rewraps values: the env file's data keys in env-file
 * mode; in managed mode the store's data keys, or the process's ENCRYPTION_KEY when the store
 * holds none. Both at once is refused: which key encrypts must never be a guess.
 */
export async function commandCipher(io: CliIo, globals: GlobalOptions, fileVars: Readonly<Record<string, string>>): Promise<Cipher> {
  if (globals.envFile !== undefined) return cliCipher(io, fileVars)
  const config = await commandConfig(io, globals, fileVars)
  const store = await openForRead(config.store)
  const keyset = store === null ? null : await withStore(store, (s) => s.getKeyset())
  const managed = keyset === null ? [] : dataKeyRecords(keyset)
  if (managed.length === 0) {
    // Neither mode has a key: the likely slip is an env file that was not named.
    if (!has(io.env, 'ENCRYPTION_KEY') && !has(io.env, 'ENCRYPTION_KEYS')) {
      throw new RekeyError('ERR_CONFIG', `no data key: ENCRYPTION_KEY is not in the environment and ${maskLocation(config.store)} holds no managed data key. Name the env file that holds ENCRYPTION_KEY (rekey --env .env rewrap ...), or create managed data keys with rekey rotate --secret ENCRYPTION_KEY`)
    }
    return cliCipher(io, fileVars)
  }
  if (has(io.env, 'ENCRYPTION_KEY') || has(io.env, 'ENCRYPTION_KEYS')) {
    throw new RekeyError('ERR_CONFIG', `ENCRYPTION_KEY is set in the environment and ${maskLocation(config.store)} holds managed data keys: unset it to use the store's keys, or name the env file that holds it (--env)`)
  }
  const { key } = await resolveMasterKey(config)
  const previous = config.masterKeyPrev?.reveal()
  return new Cipher(dataKeysOf(keyset as Keyset, accessKeysOf(previous === undefined ? [key] : [key, previous])), { onWarning: (message) => io.stderr(`rekey: warning: ${message}\n`) })
}

/** The registered columns and their last counts; none when the store does not exist yet. */
export async function dataKeyEvidence(io: CliIo, globals: GlobalOptions, fileVars: Readonly<Record<string, string>>): Promise<ColumnRecord[]> {
  const store = await openForRead((await commandConfig(io, globals, fileVars)).store)
  if (store === null) return []
  return withStore(store, readColumns)
}

/** How remedies name rekey: with the env file in env-file mode, or the command would miss its keys. */
function remedyOf(globals: GlobalOptions): { command: string } {
  const file = globals.envFile
  return { command: file === undefined ? 'rekey' : `rekey --env ${shellWord(file)}` }
}

/**
 * What is left after an env-file `rotate --secret ENCRYPTION_KEY` that kept the old key (none
 * for a first key): rekey cannot reload the applications, and finalize waits for the rewrap.
 */
export async function dataKeyFollowUp(globals: GlobalOptions): Promise<string[] | undefined> {
  if (!has(await envFileVars(globals), 'ENCRYPTION_KEY')) return undefined
  const rekey = remedyOf(globals).command
  return [
    `next: restart (or reload) every application that reads ${globals.envFile ?? 'the file'}, so that new values use the new key; then, for each encrypted column,`,
    `  ${rekey} rewrap --url DB_URL --table T --column C --aad-columns A   (A: the columns your code passes as aad)`,
    `then ${rekey} finalize --secret ENCRYPTION_KEY`,
  ]
}

/** `rotate --secret ENCRYPTION_KEY --hard`: refused while a registered column holds values of the keys it drops. */
export async function guardDataKeyRotate(io: CliIo, globals: GlobalOptions, hard: boolean): Promise<void> {
  if (!hard || globals.envFile === undefined) return
  const vars = await envFileVars(globals)
  const dropped = ['ENCRYPTION_KEY', 'ENCRYPTION_KEY_PREV'].filter((v) => has(vars, v)).map((v) => kidOfText(vars[v] as string))
  if (dropped.length === 0) return
  const columns = await recountColumns(io, globals, vars, await dataKeyEvidence(io, globals, vars), dropped[0] as string)
  const problems = hardRotateDataKeyProblems(columns, dropped, remedyOf(globals))
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
  if (globals.envFile === undefined) return
  const vars = await envFileVars(globals)
  if (force || !has(vars, 'ENCRYPTION_KEY') || !has(vars, 'ENCRYPTION_KEY_PREV')) return
  const rotatedAt = Date.parse(vars.ENCRYPTION_KEY_ROTATED_AT ?? '')
  const currentKid = kidOfText(vars.ENCRYPTION_KEY as string)
  const columns = await recountColumns(io, globals, vars, await dataKeyEvidence(io, globals, vars), currentKid)
  const problems = finalizeDataKeyProblems(columns, currentKid, kidOfText(vars.ENCRYPTION_KEY_PREV as string), Number.isNaN(rotatedAt) ? undefined : rotatedAt, remedyOf(globals))
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

/** kid -> state of the managed data keys in a store's key set. */
export function managedDataKeyStates(keys: readonly { kid: string, purpose: string, state: string }[]): Map<string, string> {
  return new Map(keys.filter((k) => k.purpose === DATA_KEY_PURPOSE).map((k) => [k.kid, k.state]))
}

const dataKeyLine = (c: { kid: string, from: string, to: string }): string => `  data key ${c.kid}: ${c.from} → ${c.to}`

/**
 * `rotate --secret ENCRYPTION_KEY` in managed mode: the first data key, or a new one staged,
 * waited for on every live instance and promoted. `--hard` is refused while a registered
 * column holds values of the keys it drops.
 */
export async function rotateManagedDataKey(io: CliIo, globals: GlobalOptions, options: { hard: boolean, timeoutMs: number }): Promise<void> {
  const report = await withManaged(io, globals, async (ctx) => {
    if (options.hard) {
      const keys = await ctx.dataKeys.keys()
      const dropped = keys.filter((k) => k.state === 'current' || k.state === 'previous').map((k) => k.kid)
      const current = keys.find((k) => k.state === 'current')
      if (current !== undefined) {
        const columns = await recountColumns(io, globals, {}, await dataKeyEvidence(io, globals, {}), current.kid)
        const problems = hardRotateDataKeyProblems(columns, dropped)
        if (problems.length > 0) throw new RekeyError('ERR_UNSAFE', `rotate --hard of ENCRYPTION_KEY refused: ${problems.join('; ')}. Rotate without --hard, rewrap, then finalize`)
      }
    }
    // --hard, once the new key encrypts everywhere: counted again, for values written under the old keys meanwhile.
    const recount = async (kids: readonly string[]): Promise<readonly string[]> => {
      const current = (await ctx.dataKeys.currentKid()) ?? ''
      return hardRotateDataKeyProblems(await recountColumns(io, globals, {}, await dataKeyEvidence(io, globals, {}), current), kids)
    }
    return ctx.dataKeys.rotate({ actor: ctx.actor, hard: options.hard, timeoutMs: options.timeoutMs, ...(options.hard ? { recount } : {}) })
  }, { create: true }) // the first data key may be what creates an app's store
  const instances = report.instances ?? []
  printReport(io, globals, report, () => [
    report.changes.length === 0 && report.created?.state === 'current'
      ? `created data key ${report.created.kid} (current): it encrypts for every Cipher.fromStore`
      : `${report.resumed === true ? 'resumed' : 'staged'} data key ${report.created?.kid ?? '?'} (next: it decrypts everywhere before it encrypts)`,
    `instances: ${instances.length === 0 ? 'none running' : instances.map((i) => `${i.instanceId} v${i.keysetVersion}${i.acknowledged ? ' ✓' : ' (waiting)'}`).join(', ')}`,
    ...report.changes.map(dataKeyLine),
    ...(report.promoted === true && report.everywhere === true ? [`the new data key encrypts everywhere (key-set version ${report.keysetVersion})`] : []),
    ...(report.kept === undefined ? [] : [`kept as previous, not revoked: ${report.kept.kids.map((k) => `data key ${k}`).join(', ')}`]),
    ...(report.changes.some((c) => c.to === 'previous') && !report.changes.some((c) => c.to === 'revoked') ? ['next: rekey rewrap --url DB_URL --table T --column C for each encrypted column, then rekey finalize --secret ENCRYPTION_KEY'] : []),
  ])
  const pending = instances.filter((i) => !i.acknowledged).map((i) => i.instanceId)
  if (report.promoted !== true) {
    throw new CliExit(EXIT.REFUSED, `timed out after ${Math.round((report.waitedMs ?? 0) / 1000)} s waiting for ${pending.length} instance(s) to load key-set version ${report.keysetVersion} (${pending.join(', ')}); the new data key stays staged as next (it decrypts, it does not encrypt): run rekey rotate --secret ENCRYPTION_KEY again to finish`)
  }
  if (report.kept !== undefined) {
    const kids = report.kept.kids.map((k) => `data key ${k}`).join(', ')
    throw new RekeyError('ERR_UNSAFE', `rotate --hard of ENCRYPTION_KEY: the new data key encrypts, but ${kids} ${report.kept.kids.length === 1 ? 'is' : 'are'} kept as previous, not revoked: ${report.kept.problems.join('; ')}. Rewrap, then finalize --secret ENCRYPTION_KEY`)
  }
  if (report.everywhere !== true) {
    throw new CliExit(EXIT.REFUSED, `promoted, but ${pending.length} instance(s) had not loaded key-set version ${report.keysetVersion} before the timeout (${pending.join(', ')}); they keep encrypting with the old key, which still decrypts, until they do`)
  }
}

/**
 * `finalize --secret ENCRYPTION_KEY` in managed mode: the previous data keys are retired once
 * every registered column, counted again now, holds no value of theirs (`--force` overrides).
 */
export async function finalizeManagedDataKey(io: CliIo, globals: GlobalOptions, options: { force: boolean }): Promise<void> {
  const report = await withManaged(io, globals, async (ctx) => {
    const keys = await ctx.dataKeys.keys()
    const current = keys.find((k) => k.state === 'current')
    const previous = keys.filter((k) => k.state === 'previous')
    if (current === undefined || previous.length === 0) return null
    const columns = await recountColumns(io, globals, {}, await dataKeyEvidence(io, globals, {}), current.kid)
    const problems = previous.flatMap((p) => finalizeDataKeyProblems(columns, current.kid, p.kid, current.activatedAt ?? undefined))
    if (problems.length > 0 && !options.force) {
      throw new RekeyError('ERR_UNSAFE', `finalize of ENCRYPTION_KEY refused (the previous data key still decrypts values): ${problems.join('; ')}`)
    }
    return ctx.dataKeys.finalize({ actor: ctx.actor, ...(problems.length > 0 ? { notes: `forced while: ${problems.join('; ')}` } : {}) })
  })
  if (report === null) {
    printReport(io, globals, { secret: 'ENCRYPTION_KEY', changes: [] }, () => ['nothing to do: no previous data key'])
    return
  }
  printReport(io, globals, report, () => report.changes.map((c) => `retired data key ${c.kid}`))
}

/** `rollback --secret ENCRYPTION_KEY` in managed mode: the previous data key encrypts again. */
export async function rollbackManagedDataKey(io: CliIo, globals: GlobalOptions): Promise<void> {
  const report = await withManaged(io, globals, (ctx) => ctx.dataKeys.rollback({ actor: ctx.actor }))
  printReport(io, globals, report, () => [...report.changes.map(dataKeyLine), `key-set version ${report.keysetVersion}`])
}
