/**
 * Webhook notices of env-file rotations, the same as managed mode sends (rotation started and
 * completed, finalized, rolled back, emergency), through the one webhook poster. The URL is
 * `REKEY_WEBHOOK_URL` from the environment, else from the env file. A failing webhook warns
 * and never fails the rotation, which is already written.
 */
import type { RotationEvent } from '../service/keys/rotation.ts'
import { noticeText, Webhooks } from '../service/notify/webhooks.ts'
import type { CliIo } from './context.ts'

/** Which notices a change sends. */
export type EnvNoticeKind = 'rotate' | 'finalize' | 'rollback' | 'emergency'

/** The notice kind of a plan's method (`rotate --hard`, `finalize --force`...). */
export function noticeKindOf(method: string): EnvNoticeKind | undefined {
  for (const kind of ['rotate', 'finalize', 'rollback', 'emergency'] as const) if (method.startsWith(kind)) return kind
  return undefined
}

/** The lifecycle events of one env-file change, in the order managed mode sends them. */
export function envEvents(kind: EnvNoticeKind, base: Omit<RotationEvent, 'type'>): RotationEvent[] {
  switch (kind) {
    case 'rotate': return [{ ...base, type: 'rotate-started' }, { ...base, type: 'rotate-completed' }]
    case 'finalize': return [{ ...base, type: 'finalized' }]
    case 'rollback': return [{ ...base, type: 'rolled-back' }]
    case 'emergency': return [{ ...base, type: 'emergency' }]
  }
}

/** Posts the events to `REKEY_WEBHOOK_URL` (environment, then env file) and waits for them; none when it is unset. */
export async function sendEnvNotices(io: CliIo, fileVars: Readonly<Record<string, string>>, events: readonly RotationEvent[]): Promise<void> {
  const url = io.env.REKEY_WEBHOOK_URL !== undefined && io.env.REKEY_WEBHOOK_URL !== '' ? io.env.REKEY_WEBHOOK_URL : fileVars.REKEY_WEBHOOK_URL
  if (url === undefined || url === '' || events.length === 0) return
  let protocol: string
  try {
    protocol = new URL(url).protocol
  } catch {
    protocol = ''
  }
  if (protocol !== 'http:' && protocol !== 'https:') {
    io.stderr('rekey: warning: REKEY_WEBHOOK_URL is not an http:// or https:// URL: no notice was sent\n')
    return
  }
  const webhooks = new Webhooks({ url, log: { warn: (_obj, msg) => io.stderr(`rekey: warning: ${msg}\n`) } })
  for (const event of events) await webhooks.post(noticeText(event))
  await webhooks.flush()
}
