/**
 * An application table in a SQLite file. Each batch is written in one IMMEDIATE
 * transaction, row by row, with the old value in the WHERE clause: a row the application
 * changed since it was read is left alone. The file must exist: rewrap never creates one.
 */
import { existsSync } from 'node:fs'
import { DatabaseSync, type SQLInputValue } from 'node:sqlite'
import { CIPHERTEXT_VERSION } from '../../core/cipher.ts'
import { RekeyError } from '../../core/errors.ts'
import { quoteIdentifier, quoteTable, type AppRow, type AppTable, type KidCounts, type TableSpec } from './app-table.ts'

/** How long a write waits for the application's lock, in ms. */
const BUSY_TIMEOUT_MS = 10_000

export function openSqliteTable(file: string, spec: TableSpec): AppTable {
  const table = quoteTable(spec.table)
  const column = quoteIdentifier(spec.column, '--column')
  const key = quoteIdentifier(spec.keyColumn, '--key-column')
  const aad = spec.aadColumns.map((c) => quoteIdentifier(c, '--aad-columns'))
  if (!existsSync(file)) throw new RekeyError('ERR_CONFIG', `no SQLite database at ${file}`)
  let db: DatabaseSync
  try {
    db = new DatabaseSync(file)
    db.exec(`PRAGMA busy_timeout = ${BUSY_TIMEOUT_MS}`)
  } catch (err) {
    throw new RekeyError('ERR_STORE_UNAVAILABLE', `cannot open ${file}: ${(err as Error).message}`)
  }
  try {
    const info = db.prepare(`SELECT name, type FROM pragma_table_info(?${table.schema === undefined ? '' : ', ?'})`)
      .all(...(table.schema === undefined ? [table.table] : [table.table, table.schema])) as { name: string, type: string }[]
    if (info.length === 0) throw new RekeyError('ERR_CONFIG', `table ${spec.table} does not exist in ${file}`)
    const names = new Set(info.map((c) => c.name))
    const missing = [spec.column, spec.keyColumn, ...spec.aadColumns].filter((c) => !names.has(c))
    if (missing.length > 0) throw new RekeyError('ERR_CONFIG', `table ${spec.table} has no column ${missing.join(', ')}`)
  } catch (err) {
    db.close()
    throw err
  }
  const select = `SELECT ${key} AS k, ${column} AS v${aad.map((a, i) => `, CAST(${a} AS TEXT) AS a${i}`).join('')} FROM ${table.sql}`
  const first = db.prepare(`${select} ORDER BY ${key} LIMIT ?`)
  const next = db.prepare(`${select} WHERE ${key} > ? ORDER BY ${key} LIMIT ?`)
  const one = db.prepare(`${select} WHERE ${key} = ?`)
  const update = db.prepare(`UPDATE ${table.sql} SET ${column} = ? WHERE ${key} = ? AND ${column} = ?`)
  const toRow = (r: Record<string, unknown>): AppRow => ({
    key: r.k,
    value: r.v === null || r.v === undefined ? null : String(r.v),
    aad: aad.map((_, i) => r[`a${i}`] as string | null),
  })
  return {
    database: file,
    dialect: 'sqlite',
    parallelWrites: 1,
    async readBatch(after, limit) {
      const rows = after === undefined ? first.all(limit) : next.all(after as SQLInputValue, limit)
      return rows.map((r) => toRow(r as Record<string, unknown>))
    },
    async readRows(keys) {
      return keys.flatMap((k) => one.all(k as SQLInputValue).map((r) => toRow(r as Record<string, unknown>)))
    },
    async writeBatch(updates) {
      const written = new Set<string>()
      if (updates.length === 0) return written
      db.exec('BEGIN IMMEDIATE')
      try {
        for (const u of updates) {
          if (Number(update.run(u.value, u.key as SQLInputValue, u.old).changes) === 1) written.add(String(u.key))
        }
        db.exec('COMMIT')
      } catch (err) {
        db.exec('ROLLBACK')
        throw err
      }
      return written
    },
    async countRows() {
      return Number((db.prepare(`SELECT count(*) AS n FROM ${table.sql}`).get() as { n: number }).n)
    },
    async countByKid(): Promise<KidCounts> {
      const prefix = `${CIPHERTEXT_VERSION}.`
      const rows = db.prepare(
        `SELECT CASE WHEN ${column} IS NULL THEN 'null' WHEN substr(${column}, 1, ${prefix.length}) = '${prefix}' AND instr(substr(${column}, ${prefix.length + 1}), '.') > 1 THEN 'kid' ELSE 'other' END AS kind,
                CASE WHEN substr(${column}, 1, ${prefix.length}) = '${prefix}' THEN substr(${column}, ${prefix.length + 1}, instr(substr(${column}, ${prefix.length + 1}), '.') - 1) END AS kid,
                count(*) AS n
           FROM ${table.sql} GROUP BY 1, 2`).all() as { kind: string, kid: string | null, n: number }[]
      const kids: Record<string, number> = {}
      let other = 0
      let nulls = 0
      let total = 0
      for (const r of rows) {
        const n = Number(r.n)
        total += n
        if (r.kind === 'null') nulls += n
        else if (r.kind === 'other') other += n
        else kids[r.kid as string] = (kids[r.kid as string] ?? 0) + n
      }
      return { kids, other, nulls, rows: total }
    },
    async close() {
      db.close()
    },
  }
}
