/** Markdown-like tables for people: `| a | b |`, a `| --- |` rule, one line per row. */
import { escapeControls } from '../core/terminal-text.ts'

/** One cell: on one line, its `|` escaped, no control or bidi character (a stored value cannot forge a row). */
const cell = (value: string): string => escapeControls(value.replace(/\r?\n/g, ' ')).replace(/\|/g, '\\|')

/** The table as text, ending with a newline. */
export function renderTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const line = (cells: readonly string[]): string => `| ${cells.map(cell).join(' | ')} |\n`
  return line(header) + line(header.map(() => '---')) + rows.map(line).join('')
}

/** An epoch-ms time as ISO 8601 to the second (`2026-03-01T10:00:00Z`). */
export function isoSeconds(at: number): string {
  return new Date(at).toISOString().replace(/\.\d{3}Z$/, 'Z')
}

/** Parses an ISO 8601 date or date-time (`2026-03-01`, `2026-03-01T10:00:00Z`) to epoch ms; `undefined` if it is not one. */
export function parseIsoDate(text: string): number | undefined {
  if (!/^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$/.test(text.trim())) return undefined
  const at = Date.parse(text.trim())
  if (Number.isNaN(at)) return undefined
  // Date.parse rolls a day the month does not have over (2026-02-30 is March 2): refuse it.
  const [year, month, day] = text.trim().slice(0, 10).split('-').map(Number) as [number, number, number]
  return new Date(Date.UTC(year, month - 1, day)).getUTCDate() === day ? at : undefined
}
