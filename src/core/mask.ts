/**
 * Masking secrets that people paste into free text (audit notes, reasons). Pure.
 *
 * What is masked: exact live secret values the caller knows, PEM private keys, JWTs, URL
 * passwords, values of `password=` / `secret: ` / `token=`-style pairs, well-known token
 * prefixes, and long high-entropy runs (hex of 32+ characters, base64/base64url of 24+
 * characters mixing upper case, lower case and digits). Ordinary prose is left alone.
 */

/** What replaces the hidden part of a value. */
export const MASKED = '…[masked]'

/** Options of {@link maskSecrets}. */
export interface MaskOptions {
  /** Values known to be secret (the live keys, tokens and passwords); values under 8 characters are ignored. */
  readonly liveSecrets?: readonly string[]
}

/**
 * The masked form of a value: at most its first 4 characters (fewer for short values, a
 * quarter of the length), then `…[masked]`.
 */
export function maskValue(value: string): string {
  return `${value.slice(0, Math.min(4, Math.floor(value.length / 4)))}${MASKED}`
}

const isMasked = (value: string): boolean => value.includes('[masked]') || (value[0] === '*' && /^\*+$/.test(value))

// BEGIN ... PRIVATE KEY up to its END line, or to the end of the text when the paste was cut.
const PEM = /-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|$)/g
// Three base64url segments, the first a JSON header (`{"` encodes to `eyJ`).
const JWT = /\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*/g
// scheme://user:password@ — the password cannot hold `@`, `/` or spaces unencoded. The
// lookbehind starts a scheme only where a run of scheme characters starts, so a long run is
// scanned once, not once per position (linear time on hostile notes).
const URL_PASSWORD = /(?<![a-z0-9+.-])([a-z][a-z0-9+.-]*:\/\/[^\s:/@]*:)([^\s@/]+)@/gi
// Vendor prefixes that mark a credential whatever its character mix.
const KNOWN_TOKENS = /\b(?:xox[abposr]-[A-Za-z0-9-]{10,}|gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}|[sr]k_(?:live|test)_[A-Za-z0-9]{16,}|glpat-[A-Za-z0-9_-]{16,}|AKIA[0-9A-Z]{16})\b/g
// NAME=value or NAME: value; the NAME must mention a password, secret, token or key
// (checked in maskPair). NAME starts where its run of name characters starts (lookbehind), so
// each run is tried once: the former `\b[…]*(?:keyword)[…]*` retried every position of a
// run and took quadratic time.
const PAIR = /(?<![A-Za-z0-9_.-])([A-Za-z0-9_.-]+)(\s*[=:]\s*)("[^"]*"|'[^']*'|[^\s,;]+)/g
const SECRET_NAME = /password|passwd|pwd|secret|token|api[_-]?key|apikey|key|credentials?|auth/i
const HEX_RUN = /\b[0-9a-fA-F]{32,}\b/g
const BASE64_RUN = /[A-Za-z0-9+/_-]{24,}={0,2}/g

/** True when a `NAME: value` value looks like a credential rather than a word ("token: expired"). */
function looksSecret(name: string, value: string): boolean {
  if (/^(password|passwd|pwd)$/i.test(name)) return true
  return /[^A-Za-z]/.test(value) || value.length >= 16
}

function maskPair(match: string, name: string, sep: string, raw: string): string {
  if (!SECRET_NAME.test(name)) return match
  const quote = raw[0] === '"' || raw[0] === "'" ? raw[0] : ''
  const value = quote === '' ? raw : raw.slice(1, -1)
  if (value === '' || isMasked(value)) return match
  // `=` always assigns a value; after `:` it may be prose, so only credential-looking values go.
  if (!sep.includes('=') && !looksSecret(name, value)) return match
  return `${name}${sep}${quote}${maskValue(value)}${quote}`
}

function mixedClasses(run: string): boolean {
  return /[A-Z]/.test(run) && /[a-z]/.test(run) && /[0-9]/.test(run)
}

/**
 * Returns `text` with every secret it recognises replaced by its masked form. Idempotent:
 * masking masked text changes nothing.
 */
export function maskSecrets(text: string, options: MaskOptions = {}): string {
  let out = text
  const live = [...new Set(options.liveSecrets ?? [])].filter((s) => s.length >= 8).sort((a, b) => b.length - a.length)
  for (const secret of live) out = out.split(secret).join(maskValue(secret))
  out = out.replace(PEM, (m) => maskValue(m))
  out = out.replace(JWT, (m) => maskValue(m))
  out = out.replace(URL_PASSWORD, (_m, head: string) => `${head}***@`)
  out = out.replace(KNOWN_TOKENS, (m) => maskValue(m))
  out = out.replace(PAIR, maskPair)
  out = out.replace(HEX_RUN, (m) => maskValue(m))
  out = out.replace(BASE64_RUN, (m) => (mixedClasses(m) ? maskValue(m) : m))
  return out
}
