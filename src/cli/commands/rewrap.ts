import type { Command } from 'commander'
import { Cipher } from '../../core/cipher.ts'
import { columnId, readColumns, readProgress, recordColumn, writeProgress, type ColumnRecord } from '../../service/data-keys/crypt-columns.ts'
import { openAppTable, type AppTable, type KidCounts, type TableSpec } from '../../ops/rewrap/app-table.ts'
import { rewrapColumn, type RewrapResult } from '../../ops/rewrap/rewrap.ts'
import { commandConfig, envFileVars, liveSecretsOf, openForWrite, withStore } from '../audit-store.ts'
import { CliExit, EXIT, operatorOf, type CliIo, type GlobalOptions } from '../context.ts'
import { commandCipher } from '../data-key.ts'
import { progressOutput } from '../progress.ts'
import { acquireRewrapLock } from '../../service/data-keys/rewrap-lock.ts'

interface RewrapOptions {
  url: string
  table: string
  column: string
  keyColumn: string
  aadColumns?: string
  dryRun?: boolean
  count?: boolean
  batchSize?: string
}

/** kid -> { values, state } for a report: the key that encrypts, the one that decrypts, or unknown. */
function describeKids(kids: Readonly<Record<string, number>>, cipher: Cipher): { kid: string, state: string, values: number }[] {
  const states = new Map(cipher.list().map((k) => [k.kid, k.state]))
  return Object.entries(kids).sort((a, b) => b[1] - a[1]).map(([kid, values]) => ({ kid, state: states.get(kid) ?? 'unknown', values }))
}

function specOf(options: RewrapOptions): TableSpec {
  const aadColumns = options.aadColumns === undefined ? [] : options.aadColumns.split(',').map((c) => c.trim()).filter((c) => c !== '')
  return { table: options.table, column: options.column, keyColumn: options.keyColumn, aadColumns }
}

function batchSizeOf(value: string | undefined): number {
  if (value === undefined) return 2000
  const n = Number(value)
  if (!Number.isInteger(n) || n < 1 || n > 20_000) throw new CliExit(EXIT.USAGE, '--batch-size must be an integer from 1 to 20000')
  return n
}

/**
 * `rekey rewrap`: re-encrypts every value of an older data key in one column under the
 * current key, resumably; `--count` and `--dry-run` only count. Either way the counts per
 * key are recorded in rekey's store: the evidence `finalize --secret ENCRYPTION_KEY` needs.
 */
export function registerRewrap(program: Command, io: CliIo): void {
  program
    .command('rewrap')
    .description('re-encrypt the values of older data keys (ENCRYPTION_KEY_PREV, or the store\'s previous data key) under the current one; resumable; counts per key')
    .requiredOption('--url <db-url>', 'the application database: a postgres:// URL or a SQLite file')
    .requiredOption('--table <name>', 'the table (or schema.table)')
    .requiredOption('--column <name>', 'the text column holding rk1.… values')
    .option('--key-column <name>', 'a unique, ordered column to page by', 'id')
    .option('--aad-columns <a,b>', 'columns whose text values, joined with ":", are each value\'s associated data')
    .option('--dry-run', 'count what would be rewrapped; change nothing in the application database')
    .option('--count', 'count the values per data key and record the counts (what status and finalize read)')
    .option('--batch-size <rows>', 'rows per batch (default 2000)')
    .addHelpText('after', [
      '',
      'Examples:',
      '  rekey --env .env rewrap --url "$DATABASE_URL" --table users --column ssn --aad-columns id',
      '  rekey rewrap --url ./app.db --table notes --column body --count',
      '  rekey rewrap --url "$DATABASE_URL" --table users --column ssn   # managed data keys (rekey rotate --secret ENCRYPTION_KEY)',
      '',
      'Progress: a bar on a terminal, JSON lines ({"event":"progress",...}) otherwise. A killed run',
      'resumes where it stopped when run again with the same key. Exit 1 when a value did not decrypt,',
      'or (ERR_CONFLICT) when another rewrap of the same column is running.',
    ].join('\n'))
    .action(async (options: RewrapOptions, command: Command) => {
      const globals = command.optsWithGlobals<GlobalOptions>()
      const spec = specOf(options)
      const batchSize = batchSizeOf(options.batchSize)
      const fileVars = await envFileVars(globals)
      const cipher = await commandCipher(io, globals, fileVars)
      const config = await commandConfig(io, globals, fileVars)
      const table = await openAppTable(options.url, spec)
      try {
        const { store, audit } = await openForWrite(io, config)
        await withStore(store, async () => {
          const id = columnId(table.database, spec.table, spec.column)
          const base = { id, database: table.database, table: spec.table, column: spec.column, keyColumn: spec.keyColumn, aadColumns: spec.aadColumns }
          // The registered aad columns are what finalize's remedy repeats: a count (which needs no
          // aad) or a run whose values did not decrypt does not replace them with its own guess.
          const registeredAad = (await readColumns(store)).find((c) => c.id === id)?.aadColumns
          const aadOf = (proven: boolean): { aadColumns: readonly string[] } => ({ aadColumns: proven || registeredAad === undefined ? spec.aadColumns : registeredAad })
          if (options.count === true || options.dryRun === true) {
            const counts = await table.countByKid()
            await store.transaction((tx) => recordColumn(tx, { ...base, ...aadOf(options.aadColumns !== undefined), ...counts, currentKid: cipher.currentKid, countedAt: new Date().toISOString() }))
            report(io, globals, countReport(table, spec, cipher, counts, options.dryRun === true, await readProgress(store, id)))
            return
          }
          // One rewrap per column: the second is refused (ERR_CONFLICT), a killed one taken over.
          const lock = await acquireRewrapLock(store, id, `${spec.table}.${spec.column}`)
          const tty = process.stderr.isTTY === true && globals.json !== true
          let result: RewrapResult
          try {
            const progress = progressOutput(io, { tty, label: `rewrap ${spec.table}.${spec.column}` })
            result = await rewrapColumn({
              table, cipher, batchSize,
              keeper: {
                load: () => readProgress(store, id),
                // Saved only while the lock is still ours: a run that lost it stops here.
                save: (p) => store.transaction(async (tx) => {
                  await lock.renewIn(tx)
                  await writeProgress(tx, id, p)
                }),
              },
              onTick: (tick) => progress.update({ done: tick.rowsDone, total: tick.rowsTotal, rewrapped: tick.rewrapped, failed: tick.failed, conflicts: tick.conflicts }),
            })
            progress.finish()
            // The counts and the audit row are written while the lock is still held.
            const record: ColumnRecord = { ...base, ...aadOf(result.failed === 0 && (result.rewrapped > 0 || options.aadColumns !== undefined)), kids: result.kids, other: result.other, nulls: result.nulls, rows: result.rowsDone, currentKid: cipher.currentKid, countedAt: new Date().toISOString() }
            await store.transaction(async (tx) => {
              await recordColumn(tx, record)
              await audit.append({
                secret: 'ENCRYPTION_KEY', operator: operatorOf(globals), method: 'rewrap', liveSecrets: liveSecretsOf(io.env, fileVars),
                notes: `${spec.table}.${spec.column} in ${table.database}: ${result.rewrapped} value(s) rewrapped to data key ${cipher.currentKid}; ${describeKids(result.kids, cipher).map((k) => `${k.kid} ${k.values}`).join(', ')}${result.failed > 0 ? `; ${result.failed} did not decrypt` : ''}`,
              }, tx)
            })
          } finally {
            await lock.release()
          }
          report(io, globals, doneReport(table, spec, cipher, result), !tty)
          if (result.failed > 0) {
            // GCM cannot tell a wrong aad from a wrong key or an altered value: name every cause, the likeliest first.
            const aad = spec.aadColumns.length === 0 ? 'no --aad-columns was given, so no aad was used' : `the aad was --aad-columns ${spec.aadColumns.join(',')}`
            throw new CliExit(EXIT.REFUSED, `${result.failed} value(s) did not decrypt (rows ${result.failedKeys.join(', ')}${result.failed > result.failedKeys.length ? ', …' : ''}): they were left as they are. Either their aad differs from what the application passed to encrypt (${aad}: give the same columns), or their key is not configured here, or they were altered`)
          }
        })
      } finally {
        await table.close()
      }
    })
}

function countReport(table: AppTable, spec: TableSpec, cipher: Cipher, counts: KidCounts, dryRun: boolean, saved: { rowsDone: number } | null): Record<string, unknown> {
  const keys = describeKids(counts.kids, cipher)
  const toRewrap = keys.filter((k) => k.kid !== cipher.currentKid).reduce((n, k) => n + k.values, 0)
  return {
    event: dryRun ? 'dry-run' : 'count', database: table.database, table: spec.table, column: spec.column, currentKid: cipher.currentKid,
    rows: counts.rows, keys, other: counts.other, nulls: counts.nulls, toRewrap, unfinishedRun: saved === null ? null : { rowsDone: saved.rowsDone },
  }
}

function doneReport(table: AppTable, spec: TableSpec, cipher: Cipher, result: RewrapResult): Record<string, unknown> {
  return {
    event: 'done', database: table.database, table: spec.table, column: spec.column, currentKid: cipher.currentKid,
    rows: result.rowsDone, rewrapped: result.rewrapped, conflicts: result.conflicts, failed: result.failed,
    resumedFrom: result.resumedFrom, keys: describeKids(result.kids, cipher), other: result.other, nulls: result.nulls,
  }
}

function report(io: CliIo, globals: GlobalOptions, body: Record<string, unknown>, json = false): void {
  if (json || globals.json === true) {
    io.stdout(`${JSON.stringify(body)}\n`)
    return
  }
  const keys = body.keys as { kid: string, state: string, values: number }[]
  if (body.event === 'done') {
    io.stdout(`rewrapped ${String(body.rewrapped)} value(s) of ${String(body.table)}.${String(body.column)} to data key ${String(body.currentKid)}${body.resumedFrom === null ? '' : ` (resumed after ${String(body.resumedFrom)} rows)`}\n`)
    if (Number(body.conflicts) > 0) io.stdout(`  ${String(body.conflicts)} row(s) changed by the application meanwhile: their new values were kept\n`)
  } else {
    io.stdout(`${String(body.table)}.${String(body.column)}: ${String(body.rows)} row(s)${body.event === 'dry-run' ? `, ${String(body.toRewrap)} value(s) would be rewrapped to ${String(body.currentKid)}` : ''}\n`)
  }
  for (const k of keys) io.stdout(`  ${k.state.padEnd(8)} ${k.kid}  ${k.values} value(s)\n`)
  if (Number(body.other) > 0) io.stdout(`  ${String(body.other)} value(s) not encrypted by rekey\n`)
}
