/**
 * The grammar of a .env file as rekey reads and writes it, held to what Node's
 * `--env-file` / `process.loadEnvFile` and the `dotenv` package both read the same way.
 *
 * Where the two disagree (researched in their sources and checked by test/config):
 * - Node ends a double-quoted value at the first `"` (no `\"` escape), dotenv skips `\"`;
 *   dotenv also skips `\'` and `` \` `` inside single quotes and backticks, Node does not.
 * - In double quotes both turn `\n` into a line break; only dotenv turns `\r` into a CR.
 * - Node trims spaces and tabs around an unquoted value, dotenv every Unicode space.
 * - A carriage return alone: Node drops it, dotenv starts a new line there.
 * - Text after a closing quote: Node ignores it, dotenv then reads the whole line unquoted.
 * - `KEY: value` is an assignment to dotenv only; `A B=1` to Node only.
 * Both agree on: `#` starts a comment in an unquoted value (even inside it), `export `,
 * last assignment wins, no `$` expansion, CRLF line ends, multi-line quoted values.
 *
 * A file is read only when rekey's reading, Node's (`util.parseEnv`, the same C++ parser as
 * `--env-file`) and dotenv's agree on every variable; a value is written in the first form
 * all three read back exactly.
 */
import { parseEnv as nodeParseEnv } from 'node:util'

/** How a value is quoted in the file. */
export type EnvQuote = '"' | "'" | '`' | ''

/** One assignment, possibly spanning lines (a quoted multi-line value). Lines are 1-based. */
export interface EnvEntry {
  readonly key: string
  readonly value: string
  readonly quote: EnvQuote
  /** Leading whitespace and `export `, kept on rewrite. */
  readonly prefix: string
  /** A comment after the value (`# signing key`), kept on rewrite. */
  readonly comment?: string
  readonly line: number
  readonly lastLine: number
}

/** A line rekey will not rewrite around, with why. */
export interface EnvProblem {
  readonly line: number
  readonly message: string
}

/** A parsed file: its lines (without line ends), its assignments and its problems. */
export interface EnvDocument {
  readonly lines: readonly string[]
  readonly eol: '\n' | '\r\n'
  readonly entries: readonly EnvEntry[]
  readonly problems: readonly EnvProblem[]
}

const ASSIGNMENT = /^([ \t]*(?:export[ \t]+)?)([\w.-]+)[ \t]*=[ \t]*(.*)$/
const QUOTES = new Set(['"', "'", '`'])

/** Node's trim of an unquoted value: spaces and tabs only. */
const trimSpaces = (s: string): string => s.replace(/^[ \t]+|[ \t]+$/g, '')

/** Parses env-file text into lines, assignments and the problems rekey sees on its own. */
export function parseEnvDocument(text: string): EnvDocument {
  // CRLF only when every line ends so; a mixed file is written with LF (every parser reads both alike).
  const eol = text.includes('\r\n') && !/(^|[^\r])\n/.test(text) ? '\r\n' : '\n'
  const lines = text.split(/\r?\n/)
  if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop()
  const entries: EnvEntry[] = []
  const problems: EnvProblem[] = []
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i] as string
    if (raw.includes('\r')) problems.push({ line: i + 1, message: 'a carriage return inside the line (Node drops it, dotenv starts a new line there)' })
    if (raw.includes('\0')) problems.push({ line: i + 1, message: 'a NUL byte (the app\'s process.env ends the value there, rekey and dotenv read on)' })
    const trimmed = raw.trimStart()
    if (trimmed === '' || trimmed.startsWith('#')) continue
    const match = ASSIGNMENT.exec(raw)
    if (match === null) {
      if (i === 0 && raw.startsWith('\ufeff')) problems.push({ line: 1, message: 'the file starts with a byte-order mark (U+FEFF): Node reads the first name with it; save the file as UTF-8 without BOM' })
      else if (raw.includes('=') || /^\s*[\w.-]+:\s/.test(raw)) problems.push({ line: i + 1, message: 'not a KEY=value line rekey can read (Node or dotenv may read it as an assignment)' })
      continue
    }
    const prefix = match[1] as string
    const key = match[2] as string
    const rest = match[3] as string
    const q = rest[0] ?? ''
    if (QUOTES.has(q)) {
      let close = rest.indexOf(q, 1)
      let last = i
      let inner: string
      let after: string
      if (close >= 0) {
        inner = rest.slice(1, close)
        after = rest.slice(close + 1)
      } else {
        const parts = [rest.slice(1)]
        let j = i + 1
        for (; j < lines.length; j++) {
          close = (lines[j] as string).indexOf(q)
          if (close >= 0) break
          parts.push(lines[j] as string)
        }
        if (j >= lines.length) {
          problems.push({ line: i + 1, message: `${key} has an unterminated ${q} quote` })
          entries.push({ key, value: trimSpaces(rest), quote: '', prefix, line: i + 1, lastLine: i + 1 })
          continue
        }
        parts.push((lines[j] as string).slice(0, close))
        inner = parts.join('\n')
        after = (lines[j] as string).slice(close + 1)
        last = j
      }
      const tail = after.trimStart()
      if (inner.endsWith('\\') && after.includes(q)) problems.push({ line: i + 1, message: `${key} has a backslash-escaped quote (\\${q}): Node ends the value at that quote, dotenv does not; use other quotes around the value` })
      else if (tail !== '' && !tail.startsWith('#')) problems.push({ line: last + 1, message: `${key} has text after its closing quote (Node ignores it, dotenv reads the whole line)` })
      entries.push({ key, value: q === '"' ? inner.replaceAll('\\n', '\n') : inner, quote: q as EnvQuote, prefix, line: i + 1, lastLine: last + 1, ...(tail.startsWith('#') ? { comment: tail } : {}) })
      i = last
      continue
    }
    const hash = rest.indexOf('#')
    entries.push({ key, value: trimSpaces(hash >= 0 ? rest.slice(0, hash) : rest), quote: '', prefix, line: i + 1, lastLine: i + 1, ...(hash >= 0 ? { comment: rest.slice(hash).trimEnd() } : {}) })
  }
  return { lines, eol, entries, problems }
}

/** The variables of a document; the last assignment wins, as in Node and dotenv. */
export function valuesOf(doc: EnvDocument): Record<string, string> {
  const env: Record<string, string> = Object.create(null) as Record<string, string>
  for (const entry of doc.entries) env[entry.key] = entry.value
  return { ...env }
}

/**
 * dotenv's reading (its default `parse`, lib/main.js since v15, unchanged through v17):
 * rekey cannot load the package at run time, so its rules are restated here and checked
 * against the real package by test/config/env-parsers.test.ts.
 */
export function dotenvReading(text: string): Record<string, string> {
  const LINE = /(?:^|^)\s*(?:export\s+)?([\w.-]+)(?:\s*=\s*?|:\s+?)(\s*'(?:\\'|[^'])*'|\s*"(?:\\"|[^"])*"|\s*`(?:\\`|[^`])*`|[^#\r\n]+)?\s*(?:#.*)?(?:$|$)/mg
  const out = new Map<string, string>()
  const lines = text.replace(/\r\n?/mg, '\n')
  let match: RegExpExecArray | null
  while ((match = LINE.exec(lines)) !== null) {
    let value = (match[2] ?? '').trim()
    const first = value[0]
    value = value.replace(/^(['"`])([\s\S]*)\1$/mg, '$2')
    if (first === '"') value = value.replace(/\\n/g, '\n').replace(/\\r/g, '\r')
    out.set(match[1] as string, value)
  }
  return Object.fromEntries(out)
}

/** Node's reading: `util.parseEnv` is the parser behind `--env-file` and `process.loadEnvFile`. */
export function nodeReading(text: string): Record<string, string> {
  const out: Record<string, string> = {}
  for (const [key, value] of Object.entries(nodeParseEnv(text))) if (value !== undefined) out[key] = value
  return out
}

/** The line a variable is assigned on: rekey's last assignment, else the first line that looks like one. */
function lineOf(doc: EnvDocument, key: string): number {
  const own = doc.entries.filter((e) => e.key === key).at(-1)
  if (own !== undefined) return own.line
  const escaped = key.replace(/[.*+?^${}()|[\]\\-]/g, '\\$&')
  // After a carriage return too: dotenv starts a new line there, rekey and Node do not.
  const re = new RegExp(`(?:^|\\r)\\s*(?:export\\s+)?${escaped}\\s*[=:]`)
  let index = doc.lines.findIndex((l) => re.test(l))
  if (index < 0) index = doc.lines.findIndex((l) => l.includes(key))
  return Math.max(index, 0) + 1
}

/**
 * Every place where rekey, Node and dotenv read the file differently, and rekey's own
 * problems, by line. Empty: the three agree on every variable.
 */
export function disagreements(doc: EnvDocument, text: string): EnvProblem[] {
  const problems = [...doc.problems]
  const seen = new Set(problems.map((p) => p.line))
  const ours = valuesOf(doc)
  const node = nodeReading(text)
  const dotenv = dotenvReading(text)
  for (const key of new Set([...Object.keys(ours), ...Object.keys(node), ...Object.keys(dotenv)])) {
    const readers = [['rekey', ours[key]], ['Node --env-file', node[key]], ['dotenv', dotenv[key]]] as const
    if (readers.every(([, v]) => v === readers[0][1])) continue
    const line = lineOf(doc, key)
    if (seen.has(line) && line > 0) continue
    seen.add(line)
    const missing = readers.filter(([, v]) => v === undefined).map(([n]) => n)
    problems.push({
      line,
      message: missing.length > 0
        ? `${key} is read by ${readers.filter(([, v]) => v !== undefined).map(([n]) => n).join(' and ')} but not by ${missing.join(' or ')}`
        : `${key} is read differently by ${groupsOf(readers)}${hintOf(doc.lines[line - 1] ?? '')}`,
    })
  }
  return problems.sort((a, b) => a.line - b.line)
}

/** `rekey and Node --env-file vs dotenv`: who reads what, without the values. */
function groupsOf(readers: readonly (readonly [string, string | undefined])[]): string {
  const groups = new Map<string | undefined, string[]>()
  for (const [name, value] of readers) groups.set(value, [...(groups.get(value) ?? []), name])
  return [...groups.values()].map((names) => names.join(' and ')).join(' vs ')
}

function hintOf(line: string): string {
  if (/\\["'`]/.test(line)) return ' (a backslash-escaped quote: Node ends the value at that quote, dotenv does not)'
  if (/\\r/.test(line)) return ' (\\r in double quotes: dotenv reads a carriage return, Node does not)'
  if (/[\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]/.test(line)) return ' (a Unicode space at an edge of the value: dotenv trims it, Node does not)'
  return ''
}

/** The written forms of a value, in order of preference: the line's own quoting first. */
function candidates(value: string, preferred: EnvQuote): string[] {
  const forms: Record<EnvQuote, string> = {
    '': value,
    "'": `'${value}'`,
    '"': `"${value.replaceAll('\n', '\\n')}"`,
    '`': `\`${value}\``,
  }
  const order: EnvQuote[] = [preferred, '', "'", '"', '`']
  return [...new Set(order.map((q) => forms[q]))]
}

/**
 * The text of `KEY=value` that rekey, Node and dotenv all read back as exactly `value`, on
 * one line; `undefined` when no such form exists (a value holding `'`, `"` and a backtick
 * while needing quotes, a line break beside a literal `\n`, a carriage return...).
 */
export function renderAssignment(prefix: string, key: string, value: string, preferred: EnvQuote = ''): string | undefined {
  return renderAssignments(prefix, key, value, preferred)[0]
}

/**
 * Every one-line text of `KEY=value` that rekey, Node and dotenv read back as exactly `value`
 * on its own, best first. A line that reads right alone can still change how a neighbour
 * reads (a `'` that closes an earlier line's open quote for dotenv), so a rewrite picks among
 * these by reading the whole file (env-file.ts).
 */
export function renderAssignments(prefix: string, key: string, value: string, preferred: EnvQuote = ''): string[] {
  const out: string[] = []
  for (const form of candidates(value, preferred)) {
    if (/[\r\n]/.test(form)) continue
    const line = `${prefix}${key}=${form}`
    const text = `${line}\n`
    const doc = parseEnvDocument(text)
    if (doc.problems.length > 0) continue
    if (valuesOf(doc)[key] === value && nodeReading(text)[key] === value && dotenvReading(text)[key] === value) out.push(line)
  }
  return out
}
