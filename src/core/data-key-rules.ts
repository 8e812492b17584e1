/**
 * When a data-key step is safe, judged on evidence: how many values of each key every
 * registered column holds. Pure: the caller reads the counts from the store.
 *
 * - finalize (ENCRYPTION_KEY_PREV removed) is refused while a column holds a value of the
 *   previous key, or was last counted before the current key took over (stale evidence);
 * - `rotate --hard` (the old keys dropped at once) is refused while a column holds a value
 *   of any key being dropped: those values would become unreadable.
 * With no column registered there is no evidence at all, and both are refused.
 */

/** The last count of one column. */
export interface ColumnEvidence {
  /** kid -> values under that key. */
  readonly kids: Readonly<Record<string, number>>
  /** Values that are not rekey ciphertexts (plaintext, another format). */
  readonly other: number
  readonly nulls: number
  readonly rows: number
  /** The key that encrypted when the column was counted. */
  readonly currentKid: string
  /** When it was counted (ISO 8601). */
  readonly countedAt: string
}

/** A counted column with the names messages use. */
export interface NamedEvidence extends ColumnEvidence {
  readonly table: string
  readonly column: string
  readonly database: string
}

const label = (c: NamedEvidence): string => `${c.table}.${c.column} (${c.database})`
const recount = (c: NamedEvidence): string => `rekey rewrap --url <${c.database}> --table ${c.table} --column ${c.column}`

const NO_COLUMN = 'no encrypted column is registered, so rekey cannot tell whether values of the old key remain: run rekey rewrap --url DB_URL --table T --column C (add --count to only count) for every column that holds ENCRYPTION_KEY values'

/** Why ENCRYPTION_KEY_PREV (kid `previousKid`) cannot be removed yet; empty when it can. */
export function finalizeDataKeyProblems(columns: readonly NamedEvidence[], currentKid: string, previousKid: string, rotatedAt?: number): string[] {
  if (columns.length === 0) return [NO_COLUMN]
  const problems: string[] = []
  for (const c of columns) {
    const held = c.kids[previousKid] ?? 0
    if (held > 0) problems.push(`${label(c)} still holds ${held} value(s) of data key ${previousKid}: run ${recount(c)}`)
    else if (c.currentKid !== currentKid || (rotatedAt !== undefined && Date.parse(c.countedAt) < rotatedAt)) {
      problems.push(`${label(c)} was last counted at ${c.countedAt}, before data key ${currentKid} took over: run ${recount(c)} --count`)
    }
  }
  return problems
}

/** Why the keys `droppedKids` cannot be dropped at once; empty when no registered column holds their values. */
export function hardRotateDataKeyProblems(columns: readonly NamedEvidence[], droppedKids: readonly string[]): string[] {
  if (columns.length === 0) return [NO_COLUMN]
  const problems: string[] = []
  for (const c of columns) {
    for (const kid of droppedKids) {
      const held = c.kids[kid] ?? 0
      if (held > 0) problems.push(`${label(c)} holds ${held} value(s) of data key ${kid}, which would become unreadable`)
    }
  }
  return problems
}
