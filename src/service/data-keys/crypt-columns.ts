/**
 * What rekey knows about encrypted columns, kept in the store's settings:
 * - `crypt.columns`: the registered columns and, per column, how many values use each data
 *   key (counted by rewrap, refreshed by `rekey rewrap --count`): the evidence finalize and
 *   `rotate --hard` are judged on;
 * - `crypt.rewrap.<id>`: the progress of an unfinished rewrap, so a killed run resumes.
 * No value, key or password is ever stored here: kids, counts, table names, a masked URL.
 */
import { createHash } from 'node:crypto'
import type { ColumnEvidence } from '../../core/data-key-rules.ts'
import type { StoreOperations } from '../../store/store.ts'

/** The setting listing the registered columns. */
export const COLUMNS_SETTING = 'crypt.columns'

/** One registered column and its last count. */
export interface ColumnRecord extends ColumnEvidence {
  readonly id: string
  readonly database: string
  readonly table: string
  readonly column: string
  readonly keyColumn: string
  readonly aadColumns: readonly string[]
}

/** Where an unfinished rewrap stopped. */
export interface RewrapProgress {
  readonly targetKid: string
  /** The key of the last row done (values as the driver returned them). */
  readonly after: unknown
  /** Counts of the rows done so far. */
  readonly kids: Record<string, number>
  readonly other: number
  readonly nulls: number
  readonly rowsDone: number
  readonly rewrapped: number
  readonly failed: number
  readonly conflicts: number
  readonly startedAt: string
}

/** The stable id of a column: database, table and column (a hash, so it names no host). */
export function columnId(database: string, table: string, column: string): string {
  return createHash('sha256').update(`${database}\n${table}\n${column}`).digest('base64url').slice(0, 16)
}

const progressSetting = (id: string): string => `crypt.rewrap.${id}`

type Settings = Pick<StoreOperations, 'getSetting' | 'setSetting'>

/** Every registered column, in registration order. */
export async function readColumns(store: Pick<StoreOperations, 'getSetting'>): Promise<ColumnRecord[]> {
  const text = await store.getSetting(COLUMNS_SETTING)
  if (text === null) return []
  const parsed = JSON.parse(text) as { columns?: ColumnRecord[] }
  return Array.isArray(parsed.columns) ? parsed.columns : []
}

/** Registers a column or replaces its count. Run it inside a transaction so two writers do not race. */
export async function recordColumn(store: Settings, record: ColumnRecord): Promise<void> {
  const columns = (await readColumns(store)).filter((c) => c.id !== record.id)
  columns.push(record)
  await store.setSetting(COLUMNS_SETTING, JSON.stringify({ columns }))
}

/** The progress of an unfinished rewrap of this column, or null. */
export async function readProgress(store: Pick<StoreOperations, 'getSetting'>, id: string): Promise<RewrapProgress | null> {
  const text = await store.getSetting(progressSetting(id))
  return text === null ? null : JSON.parse(text) as RewrapProgress
}

/** Saves (or, with null, clears) the progress of a rewrap. */
export async function writeProgress(store: Settings, id: string, progress: RewrapProgress | null): Promise<void> {
  await store.setSetting(progressSetting(id), progress === null ? null : JSON.stringify(progress))
}
