/**
 * Per-kid verification counts of one keyring, for usage evidence (`opts.usage`). Counting
 * is a map increment on the verify path; the service side drains the counts every flush
 * interval and writes them to the store (see `service/usage/usage-report.ts`). Core does no I/O:
 * the reporter is registered by the package entry, so `Keyring` stays free of store code.
 */
import { durationOption, type Duration } from './duration.ts'

/** Where and under which name a keyring reports its per-kid verification counts. */
export interface UsageOptions {
  /** The store: a SQLite file path or a `postgres://` URL (the one `rekey serve` and the CLI use). */
  store: string
  /** This service's name in `rekey status` and finalize messages: 1 to 64 of `A-Z a-z 0-9 . _ -`. */
  name: string
  /** How often counts are written. Default 10 (seconds); at least 1. */
  flushInterval?: Duration
}

/** The checked, frozen form of {@link UsageOptions}. */
export interface UsageSettings {
  readonly store: string
  readonly name: string
  readonly flushIntervalMs: number
}

/** Default flush interval of a keyring's usage report, seconds. */
export const USAGE_REPORT_INTERVAL_SECONDS = 10

const NAME = /^[A-Za-z0-9._-]{1,64}$/

/** Checks `opts.usage` once. Misuse throws `TypeError`. */
export function usageSettingsOf(usage: unknown): UsageSettings {
  if (typeof usage !== 'object' || usage === null) throw new TypeError('usage must be an object { store, name }')
  const { store, name, flushInterval } = usage as Partial<UsageOptions>
  const problems: string[] = []
  if (typeof store !== 'string' || store.trim() === '') problems.push('usage.store must be a SQLite path or a postgres:// URL')
  if (typeof name !== 'string' || !NAME.test(name)) problems.push('usage.name must be 1 to 64 characters of A-Z a-z 0-9 . _ -')
  let seconds = USAGE_REPORT_INTERVAL_SECONDS
  if (flushInterval !== undefined) {
    try {
      seconds = durationOption('usage.flushInterval', flushInterval)
    } catch (err) {
      problems.push((err as Error).message)
    }
    if (seconds < 1) problems.push('usage.flushInterval must be at least 1 second')
  }
  if (problems.length > 0) throw new TypeError(problems.join('; '))
  return Object.freeze({ store: store as string, name: name as string, flushIntervalMs: seconds * 1000 })
}

/** Counts of successful verifications per kid since the last drain. */
export class UsageCounts {
  #counts = new Map<string, number>()

  /** One verification by `kid`. No allocation once the kid has a slot. */
  add(kid: string): void {
    this.#counts.set(kid, (this.#counts.get(kid) ?? 0) + 1)
  }

  /** Takes the counts gathered so far and starts afresh. */
  drain(): ReadonlyMap<string, number> {
    const counts = this.#counts
    this.#counts = new Map()
    return counts
  }
}

/** A running usage report; `close` writes what is left and stops. */
export interface UsageReport {
  close(): Promise<void>
}

/** Starts reporting `counts` as `settings` say. Registered by the package entry. */
export type UsageReporterFactory = (counts: UsageCounts, settings: UsageSettings) => UsageReport

let factory: UsageReporterFactory | null = null

/** Registers the reporter (done once by `rekey`'s entry module). */
export function registerUsageReporter(reporter: UsageReporterFactory): void {
  factory = reporter
}

/** Starts a report; TypeError when no reporter is registered (core imported without the package entry). */
export function startUsageReport(counts: UsageCounts, settings: UsageSettings): UsageReport {
  if (factory === null) throw new TypeError('usage reporting needs the package entry: import { Keyring } from \'rekey\'')
  return factory(counts, settings)
}
