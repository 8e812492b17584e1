/**
 * Paths as `git log -p` writes them in a diff's header. A name holding `"`, `\` or a control
 * character (TAB, LF...) is C-quoted even with core.quotePath=false: `"b/tab\there.env"`,
 * octal escapes (`\303\251`) standing for bytes of the UTF-8 name. An unquoted name that
 * holds a space ends with a TAB on the `---`/`+++` lines.
 */

const ESCAPES: Readonly<Record<string, number>> = { a: 7, b: 8, t: 9, n: 10, v: 11, f: 12, r: 13, '"': 34, '\\': 92 }

/**
 * The C-quoted string opening `text` at `start` (a `"`), decoded: its value and the index just
 * past its closing quote; null when it is not well formed.
 */
function unquote(text: string, start: number): { value: string, end: number } | null {
  if (text[start] !== '"') return null
  const bytes: number[] = []
  let i = start + 1
  while (i < text.length) {
    const char = String.fromCodePoint(text.codePointAt(i) as number)
    if (char === '"') return { value: Buffer.from(bytes).toString('utf8'), end: i + 1 }
    if (char !== '\\') {
      bytes.push(...Buffer.from(char, 'utf8'))
      i += char.length
      continue
    }
    const octal = /^[0-3][0-7]{2}/.exec(text.slice(i + 1, i + 4))
    if (octal !== null) {
      bytes.push(Number.parseInt(octal[0], 8))
      i += 4
      continue
    }
    const code = ESCAPES[text[i + 1] ?? '']
    if (code === undefined) return null
    bytes.push(code)
    i += 2
  }
  return null
}

/** `name` without `prefix`, or null when it does not start with it. */
function withoutPrefix(name: string, prefix: string): string | null {
  return name.startsWith(prefix) && name.length > prefix.length ? name.slice(prefix.length) : null
}

/**
 * The path of a `+++ b/…` or `rename to …` line, given the text after the keyword and the
 * prefix the path carries (`b/`, or '' for renames); null when it cannot be read.
 */
export function headerPath(text: string, prefix: string): string | null {
  if (text.startsWith('"')) {
    const quoted = unquote(text, 0)
    return quoted === null || quoted.end !== text.length ? null : withoutPrefix(quoted.value, prefix)
  }
  // A name that ends with a TAB would be quoted: a trailing TAB is git's, after a space.
  return withoutPrefix(text.endsWith('\t') ? text.slice(0, -1) : text, prefix)
}

/**
 * The new path of a `diff --git a/… b/…` line, given the text after `diff --git `; null when
 * it cannot be read. Without quotes and with spaces in names the line is ambiguous: the
 * two names are taken to be the same (a rename names its new path on a line of its own).
 */
export function diffGitPath(text: string): string | null {
  if (text.startsWith('"')) {
    const source = unquote(text, 0)
    if (source === null || text[source.end] !== ' ') return null
    return headerPath(text.slice(source.end + 1), 'b/')
  }
  // An unquoted source holds no `"`: a quoted destination starts at the first ` "`.
  const quotedAt = text.indexOf(' "')
  if (quotedAt !== -1) return headerPath(text.slice(quotedAt + 1), 'b/')
  const half = (text.length - 1) / 2
  if (Number.isInteger(half) && text[half] === ' ' && text.slice(2, half) === text.slice(half + 3)) return withoutPrefix(text.slice(half + 1), 'b/')
  return withoutPrefix(/ (b\/.*)$/.exec(text)?.[1] ?? '', 'b/')
}
