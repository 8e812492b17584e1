/**
 * The secret inventory: what rekey tracks, its rotation cadence, the last rotation, and which
 * reminders went out for the current due date (a JSON column, reset by every rotation).
 */
import type { ReminderState, RotationRecord, SecretInput, SecretRecord } from '../types.ts'
import type { MutationOptions } from '../store.ts'
import { appendOptional } from './audit.ts'
import { int, intOrNull, text, textOrNull } from './executor.ts'
import type { SqlExecutor, SqlRow } from './executor.ts'

const COLUMNS = 'name, kind, cadence_days, last_rotated_at, last_method, notes, reminders_sent'
const NO_REMINDERS = JSON.stringify({ dueAt: null, stages: [] } satisfies ReminderState)

/** A damaged reminders column reads as "none sent": at worst a reminder goes out twice. */
function parseReminders(raw: string | null): ReminderState {
  try {
    const value: unknown = JSON.parse(raw ?? NO_REMINDERS)
    if (typeof value === 'object' && value !== null) {
      const { dueAt, stages } = value as { dueAt?: unknown, stages?: unknown }
      return {
        dueAt: typeof dueAt === 'number' ? dueAt : null,
        stages: Array.isArray(stages) ? stages.filter((s): s is string => typeof s === 'string') : [],
      }
    }
  } catch { /* fall through */ }
  return { dueAt: null, stages: [] }
}

function toSecret(row: SqlRow): SecretRecord {
  return {
    name: text(row, 'name'),
    kind: text(row, 'kind'),
    cadenceDays: int(row, 'cadence_days'),
    lastRotatedAt: intOrNull(row, 'last_rotated_at'),
    lastMethod: textOrNull(row, 'last_method'),
    notes: textOrNull(row, 'notes'),
    reminders: parseReminders(textOrNull(row, 'reminders_sent')),
  }
}

export async function upsertSecret(q: SqlExecutor, s: SecretInput): Promise<SecretRecord> {
  const keepNotes = s.notes === undefined ? 1 : 0
  const rows = await q.all(
    `INSERT INTO secrets (name, kind, cadence_days, notes, reminders_sent) VALUES ($1, $2, $3, $4, $5)
     ON CONFLICT (name) DO UPDATE SET kind = excluded.kind, cadence_days = excluded.cadence_days,
       notes = CASE WHEN $6 = 1 THEN secrets.notes ELSE excluded.notes END
     RETURNING ${COLUMNS}`,
    [s.name, s.kind, s.cadenceDays, s.notes ?? null, NO_REMINDERS, keepNotes],
  )
  return toSecret(rows[0]!)
}

export async function getSecret(q: SqlExecutor, name: string): Promise<SecretRecord | null> {
  const rows = await q.all(`SELECT ${COLUMNS} FROM secrets WHERE name = $1`, [name])
  return rows[0] === undefined ? null : toSecret(rows[0])
}

export async function listSecrets(q: SqlExecutor): Promise<SecretRecord[]> {
  return (await q.all(`SELECT ${COLUMNS} FROM secrets ORDER BY name`)).map(toSecret)
}

export async function markRotated(q: SqlExecutor, r: RotationRecord, opts: MutationOptions = {}): Promise<SecretRecord | null> {
  const keepNotes = r.notes === undefined ? 1 : 0
  const rows = await q.all(
    `UPDATE secrets SET last_rotated_at = $2, last_method = $3, reminders_sent = $4,
       notes = CASE WHEN $6 = 1 THEN notes ELSE $5 END
     WHERE name = $1 RETURNING ${COLUMNS}`,
    [r.name, r.at, r.method, NO_REMINDERS, r.notes ?? null, keepNotes],
  )
  if (rows[0] === undefined) return null
  await appendOptional(q, opts.audit)
  return toSecret(rows[0])
}

export async function markReminderSent(q: SqlExecutor, name: string, dueAt: number, stage: string): Promise<boolean> {
  const row = (await q.all(`SELECT reminders_sent FROM secrets WHERE name = $1${q.forUpdate}`, [name]))[0]
  if (row === undefined) return false
  const sent = parseReminders(textOrNull(row, 'reminders_sent'))
  const stages = sent.dueAt === dueAt ? sent.stages : []
  if (stages.includes(stage)) return false
  const next: ReminderState = { dueAt, stages: [...stages, stage] }
  await q.run('UPDATE secrets SET reminders_sent = $2 WHERE name = $1', [name, JSON.stringify(next)])
  return true
}
