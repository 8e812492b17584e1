/**
 * PostgreSQL schema migrations: a versioned list, applied at open under a session advisory
 * lock, so instances starting at once wait for each other and each migration runs once.
 * Each migration commits with its `schema_migrations` row. Times are BIGINT epoch milliseconds.
 * Never edit a released migration: append a new one.
 */
import pg from 'pg'
import type { Pool, PoolClient } from 'pg'
import { RekeyError } from '../../core/errors.ts'
import { isSystemSchema, missingPrivilege, refusedParameter, usableSchema } from './pg-misconfiguration.ts'
import type { StoreSchema } from './pg-misconfiguration.ts'

/** One step of the schema. */
export interface Migration {
  readonly version: number
  readonly name: string
  readonly sql: string
}

/** The advisory lock key ("rekey" in ASCII). Shared by every schema of a database: migrations are rare. */
const MIGRATION_LOCK_KEY = '491496302969'

export const POSTGRES_MIGRATIONS: readonly Migration[] = Object.freeze([
  {
    version: 1,
    name: 'initial schema',
    sql: `
CREATE TABLE users (
  id TEXT PRIMARY KEY,
  email TEXT NOT NULL UNIQUE,
  password_hash TEXT NOT NULL,
  role TEXT NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'admin')),
  token_version INTEGER NOT NULL DEFAULT 0,
  created_at BIGINT NOT NULL
);
CREATE TABLE session_families (
  id TEXT PRIMARY KEY,
  user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  created_at BIGINT NOT NULL,
  expires_at BIGINT NOT NULL,
  revoked_at BIGINT,
  revoke_reason TEXT
);
CREATE INDEX session_families_user ON session_families (user_id);
CREATE TABLE refresh_tokens (
  token_hash TEXT PRIMARY KEY,
  family_id TEXT NOT NULL REFERENCES session_families (id) ON DELETE CASCADE,
  kid TEXT NOT NULL,
  issued_at BIGINT NOT NULL,
  expires_at BIGINT NOT NULL,
  used_at BIGINT,
  successor_hash TEXT,
  parent_hash TEXT,
  successor_blob TEXT
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_live_kid ON refresh_tokens (kid) WHERE used_at IS NULL;
CREATE TABLE keyset (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  version BIGINT NOT NULL
);
INSERT INTO keyset (id, version) VALUES (1, 0);
CREATE TABLE keys (
  kid TEXT PRIMARY KEY,
  purpose TEXT NOT NULL,
  alg TEXT NOT NULL,
  state TEXT NOT NULL CHECK (state IN ('next', 'current', 'previous', 'retired', 'revoked')),
  sealed_material TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  activated_at BIGINT,
  demoted_at BIGINT,
  retire_after BIGINT,
  retired_at BIGINT,
  revoked_at BIGINT,
  revoke_reason TEXT
);
CREATE UNIQUE INDEX keys_one_current ON keys (purpose) WHERE state = 'current';
CREATE TABLE audit_lock (id INTEGER PRIMARY KEY CHECK (id = 1));
INSERT INTO audit_lock (id) VALUES (1);
CREATE TABLE audit_events (
  seq BIGINT PRIMARY KEY,
  at BIGINT NOT NULL,
  secret TEXT NOT NULL,
  operator TEXT NOT NULL,
  method TEXT NOT NULL,
  notes TEXT NOT NULL,
  request_id TEXT,
  prev_hash TEXT,
  hash TEXT NOT NULL
);
CREATE INDEX audit_events_at ON audit_events (at);
CREATE TABLE secrets (
  name TEXT PRIMARY KEY,
  kind TEXT NOT NULL,
  cadence_days INTEGER NOT NULL,
  last_rotated_at BIGINT,
  last_method TEXT,
  notes TEXT,
  reminders_sent TEXT NOT NULL
);
CREATE TABLE usage_counters (
  kid TEXT NOT NULL,
  instance_id TEXT NOT NULL,
  bucket_start BIGINT NOT NULL,
  result TEXT NOT NULL,
  count BIGINT NOT NULL,
  PRIMARY KEY (kid, instance_id, bucket_start, result)
);
CREATE INDEX usage_counters_bucket ON usage_counters (bucket_start);
CREATE TABLE instances (
  instance_id TEXT PRIMARY KEY,
  hostname TEXT NOT NULL,
  pid INTEGER NOT NULL,
  keyset_version BIGINT NOT NULL,
  started_at BIGINT NOT NULL,
  last_seen BIGINT NOT NULL
);
CREATE TABLE leases (
  name TEXT PRIMARY KEY,
  holder TEXT NOT NULL,
  expires_at BIGINT NOT NULL
);
CREATE TABLE settings (
  name TEXT PRIMARY KEY,
  value TEXT NOT NULL
);
CREATE TABLE change_counters (
  channel TEXT PRIMARY KEY,
  counter BIGINT NOT NULL
);
INSERT INTO change_counters (channel, counter) VALUES ('keys', 0), ('revocations', 0), ('users', 0), ('settings', 0);
`,
  },
  {
    version: 2,
    name: 'sessions at scale: sweep and prune indexes, one-round-trip refresh',
    sql: `
CREATE INDEX session_families_live_expiry ON session_families (expires_at, id) WHERE revoked_at IS NULL;
CREATE INDEX session_families_expiry ON session_families (expires_at);
CREATE INDEX session_families_revoked ON session_families (revoked_at) WHERE revoked_at IS NOT NULL;
CREATE INDEX refresh_tokens_used ON refresh_tokens (used_at) WHERE used_at IS NOT NULL;
CREATE INDEX instances_last_seen ON instances (last_seen);
CREATE INDEX audit_events_secret ON audit_events (secret, seq);
-- One refresh in one round trip: the token and its family locked, checked and rotated in the
-- function's single statement context. Reuse is reported, not acted on: ending the family
-- needs an audit row the caller computes, so the caller does that in a transaction of its own.
CREATE FUNCTION rekey_rotate_token(p_old TEXT, p_next TEXT, p_kid TEXT, p_issued BIGINT, p_expires BIGINT,
  p_blob TEXT, p_now BIGINT, p_overlap BIGINT, p_family TEXT)
RETURNS TABLE (outcome TEXT, family_id TEXT, user_id TEXT, successor_hash TEXT, successor_blob TEXT)
LANGUAGE plpgsql AS $fn$
DECLARE
  r RECORD;
BEGIN
  SELECT t.family_id AS fid, t.expires_at AS texp, t.used_at AS used, t.successor_hash AS shash, t.successor_blob AS sblob,
         f.user_id AS uid, f.expires_at AS fexp, f.revoked_at AS frev
    INTO r
    FROM refresh_tokens t JOIN session_families f ON f.id = t.family_id
   WHERE t.token_hash = p_old
     FOR UPDATE;
  IF NOT FOUND THEN
    -- A signed token naming a live family whose row was pruned: used long ago, so reused.
    IF p_family IS NOT NULL THEN
      SELECT f.id AS fid, f.user_id AS uid INTO r FROM session_families f
       WHERE f.id = p_family AND f.revoked_at IS NULL AND f.expires_at > p_now;
      IF FOUND THEN
        RETURN QUERY SELECT 'reuse'::TEXT, r.fid::TEXT, r.uid::TEXT, NULL::TEXT, NULL::TEXT;
        RETURN;
      END IF;
    END IF;
    RETURN QUERY SELECT 'unknown'::TEXT, NULL::TEXT, NULL::TEXT, NULL::TEXT, NULL::TEXT;
    RETURN;
  END IF;
  IF r.frev IS NOT NULL THEN
    RETURN QUERY SELECT 'revoked'::TEXT, NULL::TEXT, NULL::TEXT, NULL::TEXT, NULL::TEXT;
    RETURN;
  END IF;
  IF r.fexp <= p_now OR r.texp <= p_now THEN
    RETURN QUERY SELECT 'expired'::TEXT, NULL::TEXT, NULL::TEXT, NULL::TEXT, NULL::TEXT;
    RETURN;
  END IF;
  IF r.used IS NULL THEN
    UPDATE refresh_tokens SET used_at = p_now, successor_hash = p_next, successor_blob = p_blob WHERE token_hash = p_old;
    INSERT INTO refresh_tokens (token_hash, family_id, kid, issued_at, expires_at, parent_hash)
      VALUES (p_next, r.fid, p_kid, p_issued, p_expires, p_old);
    RETURN QUERY SELECT 'rotated'::TEXT, r.fid::TEXT, r.uid::TEXT, NULL::TEXT, NULL::TEXT;
    RETURN;
  END IF;
  IF p_now - r.used <= p_overlap THEN
    RETURN QUERY SELECT 'overlap'::TEXT, r.fid::TEXT, r.uid::TEXT, r.shash::TEXT, r.sblob::TEXT;
    RETURN;
  END IF;
  RETURN QUERY SELECT 'reuse'::TEXT, r.fid::TEXT, r.uid::TEXT, NULL::TEXT, NULL::TEXT;
END
$fn$;
`,
  },
  {
    version: 3,
    name: 'auth: forced password change',
    sql: `
ALTER TABLE users ADD COLUMN must_change_password INTEGER NOT NULL DEFAULT 0;
`,
  },
  {
    version: 4,
    name: 'sessions at scale: the emergency sweep as HOT updates',
    sql: `
-- The emergency's sweep sets revoked_at on every live family. With no index naming revoked_at
-- or revoke_reason, and room left in each page (fillfactor), PostgreSQL updates those rows in
-- place (HOT: no index entry written), about 8 times cheaper. The sweep goes by heap pages and
-- needs no index; the ended-session lists read listed_at, which every revocation but the
-- sweep's sets (equal to revoked_at), and so does pruning.
-- Backfilled for the last day only (through the old index; a big table is not rewritten):
-- the lists look back minutes, and older ended families are pruned once they expire.
ALTER TABLE session_families ADD COLUMN listed_at BIGINT;
UPDATE session_families SET listed_at = revoked_at
 WHERE revoked_at IS NOT NULL AND revoked_at >= (EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::bigint - 86400000;
DROP INDEX session_families_revoked;
DROP INDEX session_families_live_expiry;
CREATE INDEX session_families_listed ON session_families (listed_at) WHERE listed_at IS NOT NULL;
ALTER TABLE session_families SET (fillfactor = 70);
`,
  },
])

/** The schema version this code writes. */
export const POSTGRES_SCHEMA_VERSION = Math.max(...POSTGRES_MIGRATIONS.map((m) => m.version))

/** Creates the configured schema if missing; ERR_CONFIG when the role may not. */
async function createSchema(client: PoolClient, schema: string): Promise<void> {
  if (isSystemSchema(schema)) throw new RekeyError('ERR_CONFIG', `the PostgreSQL store's schema ${schema} is a system schema of PostgreSQL (pg_* and information_schema are its own): rekey keeps its tables in a schema of its own`)
  const { rows } = await client.query<{ database: string, role: string }>('SELECT current_database() AS database, current_user AS role')
  try {
    await client.query(`CREATE SCHEMA IF NOT EXISTS ${pg.escapeIdentifier(schema)}`)
  } catch (err) {
    throw missingPrivilege(err, rows[0] as { database: string, role: string }) ?? err
  }
}

/**
 * Applies pending migrations (creating `schema` first when given); ERR_CONFIG if the database
 * was migrated by a newer rekey. Connection failures surface as driver errors for the caller to map.
 *
 * Everything runs in one transaction under a transaction-scoped advisory lock: a session lock
 * would outlive its transaction on a pooled server connection behind PgBouncer in transaction
 * mode (taken on one backend, "released" on another), and block every later start.
 */
export async function migratePostgres(pool: Pool, schema: string | undefined, location: string, now: number = Date.now()): Promise<void> {
  const client = await pool.connect().catch((err: unknown) => { throw refusedParameter(err, location) ?? err })
  let broken = false
  const onError = (): void => { broken = true }
  client.on('error', onError)
  let target: StoreSchema | undefined
  try {
    await client.query('BEGIN')
    try {
      await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK_KEY])
      if (schema !== undefined) await createSchema(client, schema)
      target = await usableSchema(client)
      await client.query('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)')
      const { rows } = await client.query<{ version: number }>('SELECT version FROM schema_migrations')
      const applied = new Set(rows.map((row) => Number(row.version)))
      const newest = Math.max(0, ...applied)
      if (newest > POSTGRES_SCHEMA_VERSION) {
        throw new RekeyError('ERR_CONFIG', `the store's schema (version ${newest}) is newer than this rekey understands (${POSTGRES_SCHEMA_VERSION}); upgrade rekey`)
      }
      for (const m of POSTGRES_MIGRATIONS) {
        if (applied.has(m.version)) continue
        await client.query(m.sql)
        await client.query('INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)', [m.version, m.name, now])
      }
      await client.query('COMMIT')
    } catch (err) {
      await client.query('ROLLBACK').catch(() => { broken = true })
      throw (target === undefined ? undefined : missingPrivilege(err, target)) ?? err
    }
  } finally {
    client.off('error', onError)
    client.release(broken)
  }
}
