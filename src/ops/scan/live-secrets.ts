/**
 * The live-secret detector: is this token a secret rekey uses right now?
 *
 * The live secrets are read once and only their keyed fingerprints are kept:
 * HMAC-SHA-256 under a random key made for this run. Each candidate token of a scanned line
 * is fingerprinted the same way and looked up; a report carries the secret's kid and origin,
 * never the value. Only tokens whose length equals some live secret's are fingerprinted.
 */
import { createHmac, createSecretKey, randomBytes } from 'node:crypto'
import { deriveKid } from '../../core/kid.ts'

/** Where a live secret came from, for the report (`JWT_SECRET in .env`, `store access key`). */
export interface LiveOrigin {
  readonly label: string
  /** The kid of the secret, as `rekey status` shows it. */
  readonly kid: string
}

/**
 * The command that cuts a live secret: for a secret of an env file (`JWT_SECRET in .env`),
 * the env-file emergency of that file; for a store key, the managed emergency.
 */
export function emergencyCommandOf(label: string): string {
  const file = / in (.+)$/.exec(label)?.[1]
  if (label.startsWith('store ') || file === undefined) return 'rekey emergency'
  return `rekey --env ${/^[\w./-]+$/.test(file) ? file : `'${file.replaceAll("'", "'\\''")}'`} emergency --reason "leaked"`
}

/** The label of the store's data keys (`ENCRYPTION_KEY`): cut by rotation, never by an emergency. */
export const DATA_KEY_LABEL = 'store data key'
/** How a data key's finding starts (the report tells those apart by it). */
export const DATA_KEY_FINDING = 'a live rekey data key'
/** What cuts a leaked data key: emergency never touches data keys (docs/crypt.md, leak response). */
export const DATA_KEY_REMEDY = 'rekey rotate --secret ENCRYPTION_KEY'

/** A data key: the store's, or an env file's `ENCRYPTION_KEY`, `ENCRYPTION_KEY_PREV` or `ENCRYPTION_KEYS[i]`. */
export function isDataKeyLabel(label: string): boolean {
  return label === DATA_KEY_LABEL || /^ENCRYPTION_KEY(?:_PREV|S(?:\[\d+\])?)? in /.test(label)
}

/** The rotation that starts cutting a leaked data key: of the env file it came from, or of the store. */
function dataKeyRemedyOf(label: string): string {
  const file = label === DATA_KEY_LABEL ? undefined : / in (.+)$/.exec(label)?.[1]
  if (file === undefined) return DATA_KEY_REMEDY
  return `rekey --env ${/^[\w./-]+$/.test(file) ? file : `'${file.replaceAll("'", "'\\''")}'`} rotate --secret ENCRYPTION_KEY`
}

/** The finding's message for a live secret found in a file. */
export function liveMessage(origin: LiveOrigin): string {
  if (isDataKeyLabel(origin.label)) {
    return `${DATA_KEY_FINDING} (${origin.label}, kid ${origin.kid}) is in this file: it still decrypts every value encrypted under it; run \`${dataKeyRemedyOf(origin.label)}\` now, then rekey rewrap each column and rekey finalize --secret ENCRYPTION_KEY (rekey emergency does not touch data keys)`
  }
  return `a live rekey secret (${origin.label}, kid ${origin.kid}) is in this file: it still signs or verifies tokens; run \`${emergencyCommandOf(origin.label)}\` now`
}

/** A token that matched a live secret. */
export interface LiveHit {
  readonly origin: LiveOrigin
  /** 0-based column of the token in the line. */
  readonly column: number
}

/** Secrets shorter than this are not looked for: they would match ordinary words. */
const MIN_LENGTH = 8

// Delimiters around tokens: whitespace, quotes, brackets and separators that never occur in
// hex, base64 or base64url. A secret containing one is still found as a whole assigned value.
const TOKEN = /[^\s"'`,;()[\]{}<>|&]+/g

export class LiveMatcher {
  readonly #key = randomBytes(32)
  readonly #prints = new Map<string, LiveOrigin>()
  readonly #lengths = new Set<number>()

  /** Number of distinct live values known. */
  get size(): number {
    return this.#prints.size
  }

  #print(value: string): string {
    return createHmac('sha256', this.#key).update(value, 'utf8').digest('base64')
  }

  /** Adds a live secret under `label`; its kid is derived as rekey derives it for a UTF-8 secret. */
  add(value: string, label: string, kid?: string): void {
    if (value.length < MIN_LENGTH) return
    const origin = { label, kid: kid ?? deriveKid(createSecretKey(Buffer.from(value, 'utf8'))) }
    this.#prints.set(this.#print(value), origin)
    this.#lengths.add(value.length)
  }

  /** Adds raw key bytes in the encodings they are usually written in: base64url, base64, hex. */
  addBytes(bytes: Buffer, label: string, kid: string): void {
    for (const encoding of ['base64url', 'base64', 'hex'] as const) this.add(bytes.toString(encoding), label, kid)
  }

  #lookup(token: string): LiveOrigin | undefined {
    if (!this.#lengths.has(token.length)) return undefined
    return this.#prints.get(this.#print(token))
  }

  /** The live secrets in one line, at most one hit per secret. */
  match(line: string): LiveHit[] {
    if (this.#prints.size === 0) return []
    const hits = new Map<string, LiveHit>()
    const consider = (token: string, column: number): void => {
      const origin = this.#lookup(token)
      if (origin !== undefined && !hits.has(origin.kid)) hits.set(origin.kid, { origin, column })
    }
    for (const m of line.matchAll(TOKEN)) {
      const token = m[0]
      const at = m.index
      consider(token, at)
      // KEY=value, key:value, and a trailing full stop.
      for (const sep of ['=', ':']) {
        const i = token.indexOf(sep)
        if (i >= 0) consider(token.slice(i + 1), at + i + 1)
      }
      if (token.endsWith('.')) consider(token.slice(0, -1), at)
    }
    // A whole assigned value, for secrets with spaces or quotes: KEY=value, KEY="value", key: 'value'.
    const assigned = /^\s*(?:export\s+)?["']?[\w.-]+["']?\s*[=:]\s*(.*?)\s*,?\s*$/.exec(line)
    const value = assigned?.[1]
    if (value !== undefined && value !== '') {
      const unquoted = /^(["'`])(.*)\1$/.exec(value)?.[2] ?? value
      consider(unquoted, line.indexOf(unquoted))
    }
    return [...hits.values()]
  }
}
