/**
 * Scheduled rotation. Every tick (default every minute), the one instance holding the store
 * lease `scheduler` looks at each managed key purpose: a rotation left staged is finished;
 * previous keys whose grace window has passed are finalized (only when safe, never forced);
 * a key whose cadence is up is rotated. Then the reminders due are sent (see `webhooks.ts`).
 * Every step is audited with operator `scheduler`.
 *
 * The lease is taken for `leaseTtlMs` and renewed while a tick works, so a holder that dies
 * hands over within one TTL. A failed step is retried with exponential backoff (capped); the
 * backoff lives in the holder's memory, which is enough: a new holder re-reads the store and
 * starts afresh.
 */
import { cadenceDaysOf, type CadencePolicy } from '../../core/cadence.ts'
import { isRekeyError } from '../../core/errors.ts'
import { phaseOf } from '../../core/rotation-rules.ts'
import type { Store } from '../../store/store.ts'
import type { Clock } from '../clock.ts'
import { KEY_PURPOSES, type ServiceKeyPurpose } from '../keys/keys.ts'
import type { Actor, KeyRotation } from '../keys/rotation.ts'
import type { Webhooks } from '../notify/webhooks.ts'
import { publishLiveSessionCounts, pruneSessions, resumeSessionSweep, type PruneTotals } from '../sessions/session-maintenance.ts'

/** The lease name in the store. */
export const SCHEDULER_LEASE = 'scheduler'
/** The operator of the scheduler's audit rows. */
export const SCHEDULER_OPERATOR = 'scheduler'
/** Default tick interval, ms (1 minute). */
export const SCHEDULER_INTERVAL_MS = 60_000
/** Default first retry delay after a failure, ms (1 minute); doubled per failure. */
export const RETRY_BASE_MS = 60_000
/** Default cap of the retry delay, ms (1 hour). */
export const RETRY_MAX_MS = 3_600_000
const DAY_MS = 86_400_000

/** What {@link Scheduler} needs. */
export interface SchedulerOptions {
  readonly store: Store
  readonly rotation: KeyRotation
  readonly clock: Clock
  readonly instanceId: string
  readonly cadencePolicy: CadencePolicy
  /** Default {@link SCHEDULER_INTERVAL_MS}. */
  readonly intervalMs?: number
  /** Default: three intervals, at least 2 minutes. */
  readonly leaseTtlMs?: number
  /** How long a scheduled rotate waits for every instance, ms. Default 30000. */
  readonly rotateTimeoutMs?: number
  readonly retryBaseMs?: number
  readonly retryMaxMs?: number
  /** Where reminders go; `null`: none are sent. */
  readonly webhooks?: Webhooks | null
  /**
   * Session upkeep on the lease holder each tick (finish an interrupted emergency sweep,
   * publish live-session counts, prune); default on. `onMaintenance` hears what it did.
   */
  readonly maintenance?: boolean
  /** How long one tick may spend pruning, ms. Default 5000. */
  readonly pruneBudgetMs?: number
  readonly onMaintenance?: (report: MaintenanceReport) => void
  readonly log: { info(obj: object, msg: string): void, warn(obj: object, msg: string): void }
  /** REKEY_FINALIZE_WHEN_SHARE_BELOW as a fraction: finalize on usage evidence before the time rule. */
  readonly finalizeWhenShareBelow?: number
}

/** What a tick's session upkeep did. */
export interface MaintenanceReport {
  /** Sessions an interrupted emergency sweep ended, or `null` when none was pending. */
  readonly swept: number | null
  readonly pruned: PruneTotals
  /** The live-session counts published. */
  readonly counted: number
}

/** One step a tick took or tried. */
export interface SchedulerAction {
  readonly job: string
  readonly outcome: 'done' | 'failed' | 'waiting' | 'backoff'
  readonly detail?: string
}

/** What one tick did. */
export interface TickReport {
  /** False when another instance holds the lease or a tick was already running. */
  readonly ran: boolean
  readonly reason?: 'lease' | 'busy'
  readonly actions: readonly SchedulerAction[]
  readonly reminders: number
}

interface Backoff {
  failures: number
  nextAt: number
}

export class Scheduler {
  readonly #options: SchedulerOptions
  readonly #backoff = new Map<string, Backoff>()
  readonly #actor: Actor = Object.freeze({ operator: SCHEDULER_OPERATOR, requestId: null })
  #timer: NodeJS.Timeout | null = null
  #ticking: Promise<TickReport> | null = null
  #holding = false

  constructor(options: SchedulerOptions) {
    this.#options = options
  }

  get #intervalMs(): number {
    return this.#options.intervalMs ?? SCHEDULER_INTERVAL_MS
  }

  get #leaseTtlMs(): number {
    return this.#options.leaseTtlMs ?? Math.max(3 * this.#intervalMs, 120_000)
  }

  /** Ticks every interval (the first one interval after start). */
  start(): void {
    if (this.#timer !== null) return
    this.#timer = setInterval(() => {
      void this.tick().catch((err: unknown) => this.#options.log.warn({ err: { message: (err as Error)?.message } }, 'scheduler tick failed'))
    }, this.#intervalMs)
    this.#timer.unref()
  }

  /** Stops ticking, waits for a tick in flight and gives the lease up. */
  async stop(): Promise<void> {
    if (this.#timer !== null) clearInterval(this.#timer)
    this.#timer = null
    await this.#ticking?.catch(() => {})
    if (this.#holding) await this.#options.store.releaseLease(SCHEDULER_LEASE, this.#options.instanceId).catch(() => false)
    this.#holding = false
  }

  /** One round: take the lease, rotate and finalize what is due, send reminders. */
  tick(): Promise<TickReport> {
    if (this.#ticking !== null) return Promise.resolve({ ran: false, reason: 'busy', actions: [], reminders: 0 })
    this.#ticking = this.#tick().finally(() => { this.#ticking = null })
    return this.#ticking
  }

  async #renew(): Promise<boolean> {
    const { store, instanceId, clock } = this.#options
    this.#holding = await store.tryAcquireLease(SCHEDULER_LEASE, instanceId, this.#leaseTtlMs, clock.now())
    return this.#holding
  }

  async #tick(): Promise<TickReport> {
    if (!await this.#renew()) return { ran: false, reason: 'lease', actions: [], reminders: 0 }
    // Keep the lease while a slow step (a rotate waiting for instances) runs.
    const renewal = setInterval(() => { void this.#renew().catch(() => {}) }, Math.max(1000, Math.floor(this.#leaseTtlMs / 3)))
    renewal.unref()
    try {
      const actions: SchedulerAction[] = []
      for (const purpose of KEY_PURPOSES) actions.push(...await this.#purpose(purpose))
      if (this.#options.maintenance !== false) {
        const upkeep = await this.#job('sessions', () => this.#maintain())
        if (upkeep.outcome !== 'waiting') actions.push(upkeep)
      }
      let reminders = 0
      const { webhooks } = this.#options
      if (webhooks != null) {
        try {
          reminders = await webhooks.sendReminders(this.#options.store, this.#options.cadencePolicy, this.#options.clock.now(), new Set(KEY_PURPOSES.map((p) => `jwt-${p}`)))
        } catch (err) {
          this.#options.log.warn({ err: { message: (err as Error)?.message } }, 'sending reminders failed')
        }
      }
      return { ran: true, actions, reminders }
    } finally {
      clearInterval(renewal)
    }
  }

  async #purpose(purpose: ServiceKeyPurpose): Promise<SchedulerAction[]> {
    const { store, clock, cadencePolicy } = this.#options
    const keyset = await store.getKeyset()
    const mine = keyset.keys.filter((k) => k.purpose === purpose)
    const current = mine.find((k) => k.state === 'current')
    if (current === undefined) return []
    const actions: SchedulerAction[] = []
    const phase = phaseOf(mine, purpose)
    if (phase === 'staged') {
      actions.push(await this.#job(`rotate:${purpose}`, () => this.#rotate(purpose, 'finishing a staged rotation')))
      return actions
    }
    if (mine.some((k) => k.state === 'previous')) {
      actions.push(await this.#job(`finalize:${purpose}`, async () => {
        try {
          const report = await this.#options.rotation.finalize({
            secret: purpose, actor: this.#actor,
            ...(this.#options.finalizeWhenShareBelow === undefined ? {} : { whenShareBelow: this.#options.finalizeWhenShareBelow }),
          })
          return report.changed ? `retired ${report.retired.map((k) => k.kid).join(', ')}` : null
        } catch (err) {
          // Not safe yet: the grace window is still open. Not a failure.
          if (isRekeyError(err) && err.code === 'ERR_UNSAFE') return null
          throw err
        }
      }))
    }
    const secret = await store.getSecret(`jwt-${purpose}`)
    const since = secret?.lastRotatedAt ?? current.activatedAt ?? current.createdAt
    const dueAt = since + cadenceDaysOf(cadencePolicy, `jwt-${purpose}`, 'jwt') * DAY_MS
    if (clock.now() >= dueAt) {
      actions.push(await this.#job(`rotate:${purpose}`, () => this.#rotate(purpose, `due since ${new Date(dueAt).toISOString()}`)))
    }
    return actions.filter((a) => a.outcome !== 'waiting' || a.detail !== undefined)
  }

  /** Session upkeep: what a single instance does for the cluster, never on a request path. */
  async #maintain(): Promise<string | null> {
    const { store, clock } = this.#options
    const swept = await resumeSessionSweep(store, () => clock.now())
    const published = await publishLiveSessionCounts(store, clock.now())
    const pruned = await pruneSessions(store, clock.now(), this.#options.pruneBudgetMs ?? 5000)
    const report: MaintenanceReport = { swept, pruned, counted: published.counts.size }
    this.#options.onMaintenance?.(report)
    // Pruning is routine: a metric (rekey_sessions_pruned_total), not an action or an audit row.
    if (pruned.families + pruned.tokens + pruned.instances > 0) this.#options.log.info({ ...pruned }, 'pruned ended sessions, used tokens and old heartbeats')
    return swept === null ? null : `finished an interrupted emergency sweep: ${swept} session(s) ended`
  }

  async #rotate(purpose: ServiceKeyPurpose, why: string): Promise<string | null> {
    // noWait: a tick never sleeps through a publication delay; a later tick promotes the staged key.
    const report = await this.#options.rotation.rotate({ secret: purpose, actor: this.#actor, noWait: true, ...(this.#options.rotateTimeoutMs === undefined ? {} : { timeoutMs: this.#options.rotateTimeoutMs }) })
    if (!report.promoted && report.waitingFor === 'publication') return null
    if (!report.promoted) throw new Error(`the staged ${purpose} key was not loaded by every live instance in time; it stays staged`)
    const kid = report.staged[0]?.kid ?? '?'
    this.#options.log.info({ purpose, kid, why }, 'scheduled rotation done')
    return `${why}: ${kid} signs`
  }

  /** Runs a job unless it is backing off; records failures with exponential backoff. */
  async #job(job: string, run: () => Promise<string | null>): Promise<SchedulerAction> {
    const now = this.#options.clock.now()
    const backoff = this.#backoff.get(job)
    if (backoff !== undefined && now < backoff.nextAt) return { job, outcome: 'backoff', detail: `retry from ${new Date(backoff.nextAt).toISOString()}` }
    try {
      const detail = await run()
      this.#backoff.delete(job)
      return detail === null ? { job, outcome: 'waiting' } : { job, outcome: 'done', detail }
    } catch (err) {
      const failures = (backoff?.failures ?? 0) + 1
      const delay = Math.min((this.#options.retryBaseMs ?? RETRY_BASE_MS) * 2 ** (failures - 1), this.#options.retryMaxMs ?? RETRY_MAX_MS)
      const nextAt = this.#options.clock.now() + delay
      this.#backoff.set(job, { failures, nextAt })
      const message = (err as Error)?.message ?? String(err)
      this.#options.log.warn({ job, failures, retryAt: new Date(nextAt).toISOString(), err: { message } }, 'scheduled step failed; retrying with backoff')
      return { job, outcome: 'failed', detail: message }
    }
  }
}
