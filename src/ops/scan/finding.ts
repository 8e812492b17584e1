/**
 * What a scan reports, and the two ways a reported value is kept harmless: a masked preview
 * (at most the first four characters) and a fingerprint that is stable across runs (so a
 * baseline can suppress it) but never the value itself.
 */
import { createHash } from 'node:crypto'

/** rekey's own rules; secretlint's keep their package ids (`@secretlint/secretlint-rule-aws`). */
export const LIVE_RULE = 'rekey/live-secret'
export const ENV_FILE_RULE = 'rekey/tracked-env-file'
export const REKEY_FILE_RULE = 'rekey/tracked-rekey-file'

/** One leak. `commit` is set by history scans. Never holds the secret. */
export interface Finding {
  readonly rule: string
  /** The rule's message id (`AWSSecretAccessKey`), when it has one. */
  readonly messageId?: string
  /** Path relative to the scanned directory (working tree) or the repository root (history), with `/`. */
  readonly file: string
  /** 1-based line of the start of the match. */
  readonly line: number
  readonly commit?: string
  /** 32 hex characters; stable for the same rule, file and value. See {@link fingerprintOf}. */
  readonly fingerprint: string
  /** True when the value is a secret rekey uses right now (from --env-file or the store). */
  readonly live: boolean
  /** At most the first 4 characters and `…`; for live secrets, the kid instead. */
  readonly preview: string
  readonly message: string
}

/** At most the first four characters: short values (under 12) show nothing at all. */
export function maskSecret(value: string): string {
  return value.length >= 12 ? `${value.slice(0, 4)}…` : '…'
}

/**
 * A finding's fingerprint: SHA-256 over a label, the rule, the file and the matched value,
 * cut to 128 bits. Independent of line and commit, so a secret seen again in later commits or
 * moved within its file keeps its fingerprint. Live findings pass the kid, not the secret.
 */
export function fingerprintOf(rule: string, file: string, value: string): string {
  return createHash('sha256').update(`rekey-scan/v1\0${rule}\0${file}\0${value}`).digest('hex').slice(0, 32)
}

/** Tracked env files that should not be: `.env`, `.env.*` except templates. */
export function isEnvFile(file: string): boolean {
  const base = file.slice(file.lastIndexOf('/') + 1)
  if (base === '.env') return true
  return base.startsWith('.env.') && !/\.(example|sample|template)$/i.test(base)
}

/**
 * What rekey itself creates that must never be committed, and why, or undefined: the
 * master key, the embedded store beside it (sealed keys, the audit log), backup archives and
 * the folder they are written to. The env-file backups (`.env.bak`, `.env.bak.1`...) are
 * env files ({@link isEnvFile}).
 */
export function rekeyFileReason(file: string): string | undefined {
  const parts = file.split('/')
  const base = parts[parts.length - 1] as string
  if (base === 'master.key') return 'the master key of a rekey store: whoever holds it opens every sealed key'
  if (parts.slice(0, -1).includes('.rekey')) return 'a file of the embedded rekey store (.rekey/): sealed keys and the audit log'
  if (/^rekey-backup-.*\.age$/.test(base)) return 'a rekey backup archive: the whole store, encrypted'
  if (parts.slice(0, -1).some((dir) => /^backups?$/i.test(dir))) return 'a file of a backups folder: backups hold the secrets of what they back up'
  return undefined
}
