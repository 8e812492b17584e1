/**
 * What instances use to coordinate: heartbeats (which key-set version each has loaded),
 * leases (one scheduler at a time), and global settings (e.g. an emergency not-before).
 */
import type { InstanceHeartbeat } from '../types.ts'
import type { MutationOptions } from '../store.ts'
import { appendOptional } from './audit.ts'
import { bumpChange } from './changes.ts'
import { int, text, textOrNull } from './executor.ts'
import type { SqlExecutor } from './executor.ts'

export async function heartbeat(q: SqlExecutor, i: InstanceHeartbeat): Promise<void> {
  await q.run(
    `INSERT INTO instances (instance_id, hostname, pid, keyset_version, started_at, last_seen) VALUES ($1, $2, $3, $4, $5, $6)
     ON CONFLICT (instance_id) DO UPDATE SET hostname = excluded.hostname, pid = excluded.pid,
       keyset_version = excluded.keyset_version, started_at = excluded.started_at, last_seen = excluded.last_seen`,
    [i.instanceId, i.hostname, i.pid, i.keysetVersion, i.startedAt, i.lastSeen],
  )
}

export async function listInstances(q: SqlExecutor, liveSinceMs: number): Promise<InstanceHeartbeat[]> {
  const rows = await q.all(
    'SELECT instance_id, hostname, pid, keyset_version, started_at, last_seen FROM instances WHERE last_seen >= $1 ORDER BY instance_id',
    [liveSinceMs],
  )
  return rows.map((row) => ({
    instanceId: text(row, 'instance_id'),
    hostname: text(row, 'hostname'),
    pid: int(row, 'pid'),
    keysetVersion: int(row, 'keyset_version'),
    startedAt: int(row, 'started_at'),
    lastSeen: int(row, 'last_seen'),
  }))
}

export async function removeInstance(q: SqlExecutor, instanceId: string): Promise<void> {
  await q.run('DELETE FROM instances WHERE instance_id = $1', [instanceId])
}

/** Deletes the heartbeats of instances last seen before `before`; how many. */
export async function pruneInstances(q: SqlExecutor, before: number): Promise<number> {
  return q.run('DELETE FROM instances WHERE last_seen < $1', [before])
}

/** One statement: insert, or take over when expired, or renew when already ours. */
export async function tryAcquireLease(q: SqlExecutor, name: string, holder: string, ttlMs: number, now: number): Promise<boolean> {
  const changed = await q.run(
    `INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, $3)
     ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
     WHERE leases.expires_at <= $4 OR leases.holder = excluded.holder`,
    [name, holder, now + ttlMs, now],
  )
  return changed > 0
}

export async function releaseLease(q: SqlExecutor, name: string, holder: string): Promise<boolean> {
  return (await q.run('DELETE FROM leases WHERE name = $1 AND holder = $2', [name, holder])) > 0
}

export async function getSetting(q: SqlExecutor, name: string): Promise<string | null> {
  const rows = await q.all('SELECT value FROM settings WHERE name = $1', [name])
  return rows[0] === undefined ? null : textOrNull(rows[0], 'value')
}

export async function setSetting(q: SqlExecutor, name: string, value: string | null, opts: MutationOptions = {}): Promise<void> {
  if (value === null) {
    await q.run('DELETE FROM settings WHERE name = $1', [name])
  } else {
    await q.run(
      'INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET value = excluded.value',
      [name, value],
    )
  }
  await bumpChange(q, 'settings')
  await appendOptional(q, opts.audit)
}
