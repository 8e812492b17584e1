/**
 * Rotation cadence: how often each secret should be rotated, and whether it is due. Pure.
 *
 * Defaults follow the runbook table: JWT keys every 90 days; the metrics token and other
 * API tokens, SMTP credentials, storage keys and database credentials every 180 days; any
 * other secret people rotate by hand every 180 days. `rekey.config.json` may override them
 * per secret name or per kind.
 */
import { parseDuration } from './duration.ts'
import { RekeyError } from './errors.ts'

/** Default cadence per kind, in days. */
export const DEFAULT_CADENCE_DAYS: Readonly<Record<string, number>> = Object.freeze({
  jwt: 90, token: 180, smtp: 180, storage: 180, database: 180, manual: 180,
})

/** Cadence of a kind with no default, in days. Default 180. */
export const FALLBACK_CADENCE_DAYS = 180

const DAY_MS = 86_400_000

// First match wins: SMTP_TOKEN is an SMTP credential before it is a token.
const KIND_RULES: ReadonlyArray<readonly [RegExp, string]> = [
  [/^(access|refresh)$|JWT/i, 'jwt'],
  [/SMTP|SENDGRID|MAILGUN|POSTMARK|MAIL_?PASS/i, 'smtp'],
  [/DATABASE|(^|_)DB(_|$)|POSTGRES|^PG_?PASS|MYSQL|MARIADB|MONGO|REDIS/i, 'database'],
  [/AWS_SECRET|AWS_ACCESS|(^|_)S3(_|$)|STORAGE|(^|_)GCS(_|$)|BUCKET|MINIO|(^|_)R2(_|$)/i, 'storage'],
  [/TOKEN|API_?KEY|WEBHOOK/i, 'token'],
]

/** A kind guessed from a variable name: `SMTP_PASSWORD` → `smtp`, `DATABASE_URL` → `database`, else `manual`. */
export function guessKind(name: string): string {
  for (const [pattern, kind] of KIND_RULES) if (pattern.test(name)) return kind
  return 'manual'
}

/** Overrides of the default cadence, in days. */
export interface CadencePolicy {
  readonly byName: Readonly<Record<string, number>>
  readonly byKind: Readonly<Record<string, number>>
}

/** The defaults, with no override. */
export const DEFAULT_POLICY: CadencePolicy = Object.freeze({ byName: Object.freeze({}), byKind: Object.freeze({}) })

/**
 * Reads the `cadence` object of `rekey.config.json`: `{ "NAME": "30d", "kind:database": "365d" }`.
 * Values are durations with a unit (`90d`, `12w`, `1y`), rounded to whole days, at least one
 * day. Every problem is reported at once in one `ERR_CONFIG`; `source` names the file.
 */
export function parseCadencePolicy(raw: unknown, source = 'cadence'): CadencePolicy {
  if (raw === undefined || raw === null) return DEFAULT_POLICY
  if (typeof raw !== 'object' || Array.isArray(raw)) throw new RekeyError('ERR_CONFIG', `${source}: "cadence" must be an object of NAME or "kind:KIND" to a duration such as "90d"`)
  const byName: Record<string, number> = {}
  const byKind: Record<string, number> = {}
  const problems: string[] = []
  for (const [key, value] of Object.entries(raw as Record<string, unknown>)) {
    const seconds = typeof value === 'string' && /[a-z]\s*$/i.test(value) ? parseDuration(value) : undefined
    if (seconds === undefined || seconds < 86_400) {
      problems.push(`${source}: cadence "${key}" must be a duration of at least one day with a unit, such as "90d"`)
      continue
    }
    const days = Math.round(seconds / 86_400)
    if (key.startsWith('kind:') && key.length > 5) byKind[key.slice(5)] = days
    else if (/^[A-Za-z_][A-Za-z0-9_.:-]*$/.test(key) && !key.startsWith('kind:')) byName[key] = days
    else problems.push(`${source}: cadence key "${key}" must be a secret name or "kind:KIND"`)
  }
  if (problems.length > 0) throw new RekeyError('ERR_CONFIG', problems.join('; '), { problems })
  return Object.freeze({ byName: Object.freeze(byName), byKind: Object.freeze(byKind) })
}

/** The cadence of a secret in days: its name's override, else its kind's, else the kind's default. */
export function cadenceDaysOf(policy: CadencePolicy, name: string, kind: string): number {
  return policy.byName[name] ?? policy.byKind[kind] ?? DEFAULT_CADENCE_DAYS[kind] ?? FALLBACK_CADENCE_DAYS
}

/** `ok`; `due` (the due date falls within the window); `overdue` (past the due date). */
export type DueState = 'ok' | 'due' | 'overdue'

/** What {@link dueStatus} needs of a secret. Times are epoch milliseconds. */
export interface CadenceSubject {
  readonly cadenceDays: number
  readonly lastRotatedAt: number | null
  /** When the secret was first recorded: the count starts there for a secret never rotated. */
  readonly firstSeenAt?: number | null
}

/** The verdict of {@link dueStatus}. */
export interface DueVerdict {
  readonly status: DueState
  /** When the next rotation is due; `null` when neither a rotation nor a first sighting is known (then `due`). */
  readonly dueAt: number | null
}

/**
 * Whether a secret is due at `now` (epoch ms), looking `withinMs` ahead: `overdue` once `now`
 * is past the due date, `due` from `withinMs` before it, else `ok`. A secret with no known
 * start is `due`: nobody knows how old it is.
 */
export function dueStatus(secret: CadenceSubject, now: number, withinMs: number): DueVerdict {
  const start = secret.lastRotatedAt ?? secret.firstSeenAt ?? null
  if (start === null) return { status: 'due', dueAt: null }
  const dueAt = start + secret.cadenceDays * DAY_MS
  if (now > dueAt) return { status: 'overdue', dueAt }
  if (now >= dueAt - withinMs) return { status: 'due', dueAt }
  return { status: 'ok', dueAt }
}
