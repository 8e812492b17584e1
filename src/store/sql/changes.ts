/**
 * Change counters: one row per channel, bumped in the transaction of every change an instance
 * may cache (keys, revocations, users, settings). SQLite instances poll them; PostgreSQL also
 * sends a NOTIFY, delivered at commit, and keeps the counters so both dialects answer
 * `changeCounters()` alike.
 */
import { CHANGE_CHANNELS } from '../store.ts'
import type { ChangeChannel } from '../store.ts'
import { int, text } from './executor.ts'
import type { SqlExecutor } from './executor.ts'

/** Bumps `channel` inside the caller's transaction and signals it at commit. */
export async function bumpChange(q: SqlExecutor, channel: ChangeChannel): Promise<void> {
  await q.run('UPDATE change_counters SET counter = counter + 1 WHERE channel = $1', [channel])
  await q.notify(channel)
}

/**
 * A change that concerns one user (a session ended, a token version bumped). PostgreSQL sends
 * the user in the notification and leaves the shared counter row alone, so revocations of
 * different users do not queue behind one row lock and instances evict only that user;
 * SQLite, whose instances poll the counters, bumps the counter as before.
 */
export async function bumpUserChange(q: SqlExecutor, channel: ChangeChannel, userId: string): Promise<void> {
  if (q.polled) {
    await bumpChange(q, channel)
    return
  }
  await q.notify(channel, userId)
}

/** Every channel's counter (0 for a channel without a row). */
export async function readChangeCounters(q: SqlExecutor): Promise<Record<ChangeChannel, number>> {
  const rows = await q.all('SELECT channel, counter FROM change_counters')
  const counters = Object.fromEntries(CHANGE_CHANNELS.map((channel) => [channel, 0])) as Record<ChangeChannel, number>
  for (const row of rows) {
    const channel = text(row, 'channel')
    if ((CHANGE_CHANNELS as readonly string[]).includes(channel)) counters[channel as ChangeChannel] = int(row, 'counter')
  }
  return counters
}
