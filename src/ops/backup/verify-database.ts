/**
 * The temporary database of the PostgreSQL restore drill (`rekey_verify_<hex>`), and the
 * removal of those a dead run left.
 *
 * The run that creates one first takes a session-level advisory lock derived from its name,
 * on the connection it keeps for its whole life, so the lock is held while the database may
 * be in use and released by the server when that connection ends (a kill -9, a lost host).
 * A later run, on any host, drops a `rekey_verify_*` database only when no session anywhere on
 * the server holds its lock (`pg_locks` lists every database's locks) and none is connected
 * to it: never one in use.
 */
import { randomBytes } from 'node:crypto'
import type pg from 'pg'
import { onInterrupt } from './interrupt-cleanup.ts'

const PREFIX = 'rekey_verify_'
const NAME = /^rekey_verify_[0-9a-f]{12}$/

// Two int4 keys (a namespace, the name's hash): pg_locks shows them as classid, objid, objsubid 2.
const LOCK = "hashtext('rekey_verify')"

/** A fresh name, `rekey_verify_<12 hex>`. */
export function verifyDatabaseName(): string {
  return `${PREFIX}${randomBytes(6).toString('hex')}`
}

/** Takes the lock of database `name` on `admin`, held until `admin` ends. Before CREATE DATABASE. */
export async function lockVerifyDatabase(admin: pg.Client, name: string): Promise<void> {
  await admin.query(`SELECT pg_advisory_lock(${LOCK}, hashtext($1))`, [name])
}

/**
 * Registers the drop of `name` on an interrupt (through a fresh connection from `connect`:
 * the drill's own may be busy), until the returned function is called.
 */
export function dropVerifyDatabaseOnInterrupt(name: string, connect: () => Promise<pg.Client>): () => void {
  return onInterrupt(`database ${name}`, async () => {
    const client = await connect()
    try {
      await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
    } finally {
      await client.end().catch(() => {})
    }
  })
}

/**
 * Drops every `rekey_verify_*` database of the server whose lock no session holds (its
 * creator is gone) and returns their names. A database this role may not drop is left.
 */
export async function dropDeadVerifyDatabases(client: pg.Client): Promise<string[]> {
  const { rows } = await client.query<{ datname: string }>(`
    SELECT d.datname FROM pg_database d
    WHERE d.datname LIKE 'rekey\\_verify\\_%'
      AND NOT EXISTS (SELECT 1 FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
        AND l.classid = ${LOCK}::oid AND l.objid = hashtext(d.datname)::oid)
      -- And no session on it: a drill of an older rekey holds no lock, and a tool a dead run started may still write there.
      AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.datname = d.datname)
    ORDER BY d.datname`)
  const dropped: string[] = []
  for (const { datname } of rows) {
    if (!NAME.test(datname)) continue
    try {
      await client.query(`DROP DATABASE IF EXISTS ${datname} WITH (FORCE)`)
      dropped.push(datname)
    } catch {
      // Another role's, or dropped by another run meanwhile: left to them.
    }
  }
  return dropped
}
