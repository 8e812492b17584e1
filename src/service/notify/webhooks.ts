/**
 * Reminders and notices to a Slack-compatible webhook (`REKEY_WEBHOOK_URL`): a POST of
 * `{ "text": ... }` with a timeout. Texts name secrets, kids, dates and operators, never a
 * secret value (and are masked once more before they leave). A failing webhook is logged and
 * never fails the rotation or the tick that sent it.
 *
 * Reminders go out at T-7 d, T-1 d and T-0 of each inventory secret's due date, each once
 * across instances: the store records the stage before it is sent (at most once; a send that
 * fails is logged, not retried). When a stage was missed (the service was down), only the
 * latest stage reached is sent.
 */
import type { CadencePolicy } from '../../core/cadence.ts'
import { maskSecrets } from '../../core/mask.ts'
import type { StoreOperations } from '../../store/store.ts'
import { dueReport } from '../inventory/inventory.ts'
import type { RotationEvent } from '../keys/rotation.ts'

/** Default timeout of one POST, ms (5 seconds). */
export const WEBHOOK_TIMEOUT_MS = 5000
const DAY_MS = 86_400_000

/** The reminder stages, latest first, with how long before the due date each starts. */
export const REMINDER_STAGES: ReadonlyArray<readonly [stage: string, beforeMs: number]> = Object.freeze([
  ['T-0', 0], ['T-1d', DAY_MS], ['T-7d', 7 * DAY_MS],
] as const)

/** The stage reached at `now` for a secret due at `dueAt`, or `null` before T-7 d. */
export function reminderStage(dueAt: number, now: number): string | null {
  for (const [stage, beforeMs] of REMINDER_STAGES) if (now >= dueAt - beforeMs) return stage
  return null
}

/** Options of {@link Webhooks}. */
export interface WebhookOptions {
  /** The webhook URL; it usually embeds a token, so it is never logged. */
  readonly url: string
  /** Default {@link WEBHOOK_TIMEOUT_MS}. */
  readonly timeoutMs?: number
  readonly log?: { warn(obj: object, msg: string): void }
}

const iso = (ms: number): string => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z')

/** The text of a lifecycle notice. */
export function noticeText(event: RotationEvent): string {
  const what = event.secrets.join(', ')
  switch (event.type) {
    case 'rotate-started':
      return `:arrows_counterclockwise: rekey: rotation of ${what} started by ${event.operator} (staged ${event.kids.join(', ')}; it signs once every instance has loaded it)`
    case 'rotate-completed':
      return `:white_check_mark: rekey: rotation of ${what} completed by ${event.operator}: ${event.kids.join(', ')} now signs${event.finalizeSafeAt == null ? '' : `; finalize is safe from ${event.finalizeSafeAt}`}`
    case 'finalized':
      // "rekey: <name>" would read as a `key: value` pair to the masker, so the verb comes first.
      return `:lock: rekey: finalize of ${what} by ${event.operator}: ${event.kids.join(', ')} retired`
    case 'rolled-back':
      return `:rewind: rekey: rollback of ${what} by ${event.operator}: ${event.kids.join(', ')} signs again`
    case 'emergency':
      return `:rotating_light: rekey: emergency rotation of ${what} by ${event.operator}: revoked keys cut, ${event.kids.join(', ')} now signs${event.reason === undefined || event.reason === '' ? '' : `; reason: ${event.reason}`}`
  }
}

/** `1 day`, `5 days`: whole days left until `dueAt`, rounded up (a stage is reached late when the service was down). */
function daysLeft(dueAt: number, now: number): string {
  const days = Math.max(1, Math.ceil((dueAt - now) / DAY_MS))
  return days === 1 ? '1 day' : `${days} days`
}

/** The text of a reminder; `now` (default: the stage's nominal time) gives the days left. */
export function reminderText(name: string, kind: string, stage: string, dueAt: number, automatic: boolean, now?: number): string {
  const nominal = dueAt - (stage === 'T-1d' ? DAY_MS : 7 * DAY_MS)
  const when = stage === 'T-0' ? `is due for rotation now (due ${iso(dueAt)})` : `is due for rotation in ${daysLeft(dueAt, now ?? nominal)} (${iso(dueAt)})`
  const how = automatic ? 'the rekey scheduler rotates it automatically' : `rotate it, then run \`rekey record ${name}\``
  return `:alarm_clock: rekey reminder: ${name} (${kind}) ${when}; ${how}`
}

/** Posts to one webhook. */
export class Webhooks {
  readonly #url: string
  readonly #timeoutMs: number
  readonly #log: WebhookOptions['log']
  readonly #pending = new Set<Promise<boolean>>()

  constructor(options: WebhookOptions) {
    this.#url = options.url
    this.#timeoutMs = options.timeoutMs ?? WEBHOOK_TIMEOUT_MS
    this.#log = options.log
  }

  /** POSTs `{ text }`; true on a 2xx answer. Never throws. */
  post(text: string): Promise<boolean> {
    const sent = (async () => {
      try {
        const res = await fetch(this.#url, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ text: maskSecrets(text) }),
          signal: AbortSignal.timeout(this.#timeoutMs),
          redirect: 'error',
        })
        await res.body?.cancel().catch(() => {})
        if (res.ok) return true
        this.#log?.warn({ status: res.status }, 'webhook answered with an error status')
      } catch (err) {
        const e = err as Error & { cause?: { code?: string } }
        // The URL is not logged: it usually embeds the webhook's token.
        this.#log?.warn({ err: { message: e.name === 'TimeoutError' ? `no answer within ${this.#timeoutMs} ms` : e.cause?.code ?? e.message } }, 'webhook post failed')
      }
      return false
    })()
    this.#pending.add(sent)
    void sent.finally(() => this.#pending.delete(sent))
    return sent
  }

  /** Sends the notice of a committed lifecycle step, in the background. */
  notice(event: RotationEvent): void {
    void this.post(noticeText(event))
  }

  /**
   * Sends the reminder stage each inventory secret has reached at `now`, once across
   * instances. `automatic` names the secrets the scheduler rotates itself. How many were sent.
   */
  async sendReminders(store: Pick<StoreOperations, 'listSecrets' | 'firstAuditAt' | 'markReminderSent'>, policy: CadencePolicy, now: number,
    automatic: ReadonlySet<string> = new Set()): Promise<number> {
    let sent = 0
    for (const entry of await dueReport(store, policy, now, 7 * DAY_MS)) {
      // Without a start date there is no due date to count from: `rekey due` lists it as due.
      if (entry.dueAt === null) continue
      const stage = reminderStage(entry.dueAt, now)
      if (stage === null) continue
      if (!await store.markReminderSent(entry.name, entry.dueAt, stage)) continue
      if (await this.post(reminderText(entry.name, entry.kind, stage, entry.dueAt, automatic.has(entry.name), now))) sent++
    }
    return sent
  }

  /** Waits for posts in flight. */
  async flush(): Promise<void> {
    await Promise.all([...this.#pending])
  }
}
