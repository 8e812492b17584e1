/**
 * Text for a terminal. What the CLI prints from stored data (audit notes, emergency reasons,
 * operators, emails, secret names, scanned files) was typed by someone else: an escape
 * sequence in it could clear the reader's screen or move the cursor, a carriage return
 * could overwrite a line with a forged one, a bidi override (U+202E) could reverse what is
 * read. Each such character is shown as its code instead (`\u001b`), so the reader sees
 * what is stored and the terminal obeys none of it.
 */

/**
 * C0 and C1 controls and DEL (category Cc), format characters (Cf: bidi overrides and
 * isolates, zero-width characters, the soft hyphen) and the line and paragraph separators.
 */
/**
 * The zero-width non-joiner and joiner (U+200C, U+200D) pass: they move and reverse nothing,
 * and text needs them (Persian spelling, emoji sequences such as 👩‍💻).
 */
const UNSAFE = /(?![\u200c\u200d])[\p{Cc}\p{Cf}\u2028\u2029]/u
const UNSAFE_ALL = new RegExp(UNSAFE.source, 'gu')
/** The same, but line feeds and tabs pass: for whole output blocks, whose lines end with `\n`. */
const UNSAFE_BUT_NEWLINE = /(?![\n\t\u200c\u200d])[\p{Cc}\p{Cf}\u2028\u2029]/gu

/** `\uXXXX`, a surrogate pair of them above U+FFFF: an escape JSON and JavaScript both read. */
function codeOf(char: string): string {
  let out = ''
  for (let i = 0; i < char.length; i++) out += `\\u${char.charCodeAt(i).toString(16).padStart(4, '0')}`
  return out
}

/** Whether `text` holds a control, format or separator character (`--operator` refuses them). */
export function hasControlCharacters(text: string): boolean {
  return UNSAFE.test(text)
}

/** `text` with every control, format and separator character written as its code: one safe line. */
export function escapeControls(text: string): string {
  return text.replace(UNSAFE_ALL, codeOf)
}

/**
 * A block of output as the CLI writes it: line feeds kept, every other control, format and
 * separator character written as its code. JSON stays valid and means the same (the codes
 * are JSON escapes, and outside strings JSON holds none of these characters). A carriage
 * return that opens the block is kept: the progress bar redraws its line with it, and at the
 * start of a line it moves nothing.
 */
export function terminalSafe(text: string): string {
  if (text.startsWith('\r')) return `\r${text.slice(1).replace(UNSAFE_BUT_NEWLINE, codeOf)}`
  return text.replace(UNSAFE_BUT_NEWLINE, codeOf)
}
