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
  /** As registered by rewrap: the remedy repeats them, or every value would fail its `aad`. */
  readonly keyColumn?: string
  readonly aadColumns?: readonly string[]
}

/** How the remedies name rekey: `rekey --env .env` in env-file mode, so the command reads the same keys. */
export interface RemedyOptions {
  readonly command?: string
}

const label = (c: NamedEvidence): string => `${c.table}.${c.column} (${c.database})`
// A URL whose password was masked is a placeholder to fill in; a SQLite path is pasted as is.
const urlArg = (database: string): string => database.includes('***') ? `<${database} with its password>` : shellWord(database)
/** `text` as one shell word: as it is when plain, else single-quoted. */
export const shellWord = (text: string): string => /^[\w./:@%+=,-]+$/.test(text) ? text : `'${text.replaceAll("'", "'\\''")}'`
/** The rewrap that registered the column, so that pasting it works: same key column, same aad columns. */
const recount = (c: NamedEvidence, options: RemedyOptions): string => [
  `${options.command ?? 'rekey'} rewrap --url ${urlArg(c.database)} --table ${c.table} --column ${c.column}`,
  ...(c.keyColumn !== undefined && c.keyColumn !== 'id' ? [` --key-column ${c.keyColumn}`] : []),
  ...(c.aadColumns !== undefined && c.aadColumns.length > 0 ? [` --aad-columns ${c.aadColumns.join(',')}`] : []),
].join('')

const noColumn = (options: RemedyOptions): string => `no encrypted column is registered, so rekey cannot tell whether values of the old key remain: run ${options.command ?? 'rekey'} rewrap --url DB_URL --table T --column C --aad-columns A (the columns your code passes as aad; add --count to only count) for every column that holds ENCRYPTION_KEY values`

/** Why ENCRYPTION_KEY_PREV (kid `previousKid`) cannot be removed yet; empty when it can. */
export function finalizeDataKeyProblems(columns: readonly NamedEvidence[], currentKid: string, previousKid: string, rotatedAt?: number, options: RemedyOptions = {}): string[] {
  if (columns.length === 0) return [noColumn(options)]
  const problems: string[] = []
  for (const c of columns) {
    const held = c.kids[previousKid] ?? 0
    if (held > 0) problems.push(`${label(c)} still holds ${held} value(s) of data key ${previousKid}: run ${recount(c, options)}`)
    else if (c.currentKid !== currentKid || (rotatedAt !== undefined && Date.parse(c.countedAt) < rotatedAt)) {
      problems.push(`${label(c)} was last counted at ${c.countedAt}, before data key ${currentKid} took over: run ${recount(c, options)} --count`)
    }
  }
  return problems
}

/** Why the keys `droppedKids` cannot be dropped at once; empty when no registered column holds their values. */
export function hardRotateDataKeyProblems(columns: readonly NamedEvidence[], droppedKids: readonly string[], options: RemedyOptions = {}): string[] {
  if (columns.length === 0) return [noColumn(options)]
  const problems: string[] = []
  for (const c of columns) {
    for (const kid of droppedKids) {
      const held = c.kids[kid] ?? 0
      if (held > 0) problems.push(`${label(c)} holds ${held} value(s) of data key ${kid}, which would become unreadable`)
    }
  }
  return problems
}
