/**
 * Prometheus metrics of one service instance, in a registry of its own (so several services
 * in one process, as in tests, do not collide).
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client'
import { FastHistogram, MapCounter } from './fast-metrics.ts'
import type { KeyInfo } from '../../core/key.ts'

/** The metrics the service records. */
export class ServiceMetrics {
  readonly registry = new Registry()
  readonly verifications: MapCounter<'kid' | 'result' | 'purpose'>
  readonly verifyDuration: FastHistogram
  readonly logins: Counter<'result'>
  readonly refreshes: Counter<'result'>
  readonly reuseDetected: Counter
  readonly sessionsCreated: Counter
  readonly liveSessions: Gauge<'kid'>
  readonly rotationEvents: Counter<'type'>
  readonly sessionsPruned: Counter<'kind'>
  readonly sessionsSwept: Counter
  readonly limitStoreErrors: Counter<'limit'>
  readonly httpDuration: Histogram<'method' | 'route' | 'status_code'>
  /** Reads the due dates into the cache scrapes serve (in the background after the first). */
  readonly readDueDates: () => Promise<void>
  /**
   * `liveSessions`: the counts the scheduler's lease holder published (one row read per scrape,
   * never a count over the sessions), with when they were taken; `null` when none was published.
   */
  constructor(liveSessions: () => Promise<{ readonly at: number, readonly counts: ReadonlyMap<string, number> } | null>, keys: KeyMetricsSource = { list: () => [], version: () => 0 }, dueDates: () => Promise<readonly DueDate[]> = async () => []) {
    const registers = [this.registry]
    collectDefaultMetrics({ register: this.registry, prefix: 'rekey_' })
    this.verifications = new MapCounter(this.registry, {
      name: 'rekey_token_verifications_total',
      help: 'Token verifications by the kid in the token header and the result (ok or an error code).',
      labelNames: ['purpose', 'kid', 'result'],
    })
    this.verifyDuration = new FastHistogram(this.registry, {
      name: 'rekey_token_verify_duration_seconds',
      help: 'Time to verify a token, signature and claims.',
      label: 'purpose',
      // Up to 1 s: a verification that takes 50 ms is an incident, and must land in a bucket, not +Inf.
      buckets: [0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
    })
    this.httpDuration = new Histogram({
      name: 'rekey_http_request_duration_seconds',
      help: 'HTTP request duration by method, route pattern (never the raw path) and status code; the SLO is p99 < 50 ms.',
      labelNames: ['method', 'route', 'status_code'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers,
    })
    this.logins = new Counter({ name: 'rekey_logins_total', help: 'Login attempts by result.', labelNames: ['result'], registers })
    this.refreshes = new Counter({ name: 'rekey_refreshes_total', help: 'Refresh attempts by result.', labelNames: ['result'], registers })
    this.reuseDetected = new Counter({ name: 'rekey_refresh_reuse_detected_total', help: 'Refresh tokens reused after the overlap window (family ended).', registers })
    this.sessionsCreated = new Counter({ name: 'rekey_sessions_created_total', help: 'Sessions (refresh-token families) created by login.', registers })
    let countedAt: number | null = null
    this.liveSessions = new Gauge({
      name: 'rekey_live_sessions',
      help: 'Live sessions per previous refresh kid (what finalize waits on), as last counted by the scheduler\'s lease holder; see rekey_live_sessions_age_seconds.',
      labelNames: ['kid'],
      registers,
      async collect() {
        this.reset()
        countedAt = null
        try {
          const published = await liveSessions()
          if (published === null) return
          countedAt = published.at
          for (const [kid, n] of published.counts) this.set({ kid }, n)
        } catch {
          // Store down: the gauge is left empty rather than failing the scrape.
        }
      },
    })
    new Gauge({
      name: 'rekey_live_sessions_age_seconds',
      help: 'How long ago rekey_live_sessions was counted (absent until the lease holder first counts).',
      registers,
      collect() {
        this.reset()
        if (countedAt !== null) this.set(Math.max(0, (Date.now() - countedAt) / 1000))
      },
    })
    this.sessionsPruned = new Counter({
      name: 'rekey_sessions_pruned_total',
      help: 'Rows pruned by this instance while it held the scheduler lease, by kind (families, tokens, instances).',
      labelNames: ['kind'],
      registers,
    })
    this.sessionsSwept = new Counter({
      name: 'rekey_emergency_sessions_swept_total',
      help: 'Sessions this instance ended while finishing an interrupted emergency sweep.',
      registers,
    })
    this.rotationEvents = new Counter({
      name: 'rekey_rotation_events_total',
      help: 'Rotation steps this instance performed (admin API, dashboard, scheduler) by type.',
      labelNames: ['type'],
      registers,
    })
    this.limitStoreErrors = new Counter({
      name: 'rekey_limit_store_errors_total',
      help: 'Failures of the shared limits store (Redis) by limit; each one let a request through (fail open).',
      labelNames: ['limit'],
      registers,
    })
    new Gauge({
      name: 'rekey_key_age_seconds',
      help: 'Age of each loaded key since it was created (managed keys) or activated, by purpose and state.',
      labelNames: ['kid', 'purpose', 'state'],
      registers,
      collect() {
        this.reset()
        const now = Date.now()
        for (const { purpose, key } of keys.list()) {
          const since = Date.parse(key.createdAt ?? key.activatedAt ?? '')
          if (!Number.isNaN(since)) this.set({ kid: key.kid, purpose, state: key.state }, Math.max(0, (now - since) / 1000))
        }
      },
    })
    // The inventory changes rarely and reading it may scan the audit log: read once a minute at
    // most, in the background. A scrape never waits for it, but for the very first reading,
    // which the service starts once it is up (`readDueDates`).
    let dueCache: { at: number, dates: readonly DueDate[] } | null = null
    let dueReading: Promise<void> | null = null
    const readDue = (): Promise<void> => {
      dueReading ??= dueDates().then(
        (dates) => { dueCache = { at: Date.now(), dates } },
        () => { /* Store down: the last values stay, retried at the next scrape. */ },
      ).finally(() => { dueReading = null })
      return dueReading
    }
    this.readDueDates = readDue
    new Gauge({
      name: 'rekey_secret_due_timestamp_seconds',
      help: 'When each tracked secret is due for rotation by its cadence (Unix seconds); alert on time() past it.',
      labelNames: ['secret', 'kind'],
      registers,
      async collect() {
        if (dueCache === null) await readDue()
        else if (Date.now() - dueCache.at > 60_000) void readDue()
        if (dueCache === null) return
        this.reset()
        for (const d of dueCache.dates) if (d.dueAt !== null) this.set({ secret: d.name, kind: d.kind }, d.dueAt / 1000)
      },
    })
    new Gauge({
      name: 'rekey_key_set_version',
      help: 'The version of the key set this instance has loaded (equal on every instance once a change has propagated).',
      registers,
      collect() { this.set(keys.version()) },
    })
  }

  /** Counts one verification (the hot path: map lookups on strings the keyring already holds). */
  countVerification(purpose: string, kid: string, result: string): void {
    this.verifications.inc(purpose, kid, result)
  }

  /** Records how long one verification took, in seconds. */
  observeVerify(purpose: string, seconds: number): void {
    this.verifyDuration.observe(purpose, seconds)
  }
}

/** A tracked secret's due date (epoch ms), as `rekey due` computes it. */
export interface DueDate {
  readonly name: string
  readonly kind: string
  readonly dueAt: number | null
}

/** What the key metrics read at scrape time. */
export interface KeyMetricsSource {
  list(): { purpose: string, key: KeyInfo }[]
  version(): number
}
