/**
 * SQLite schema migrations: a versioned list, applied at open inside one `BEGIN IMMEDIATE`
 * transaction, so processes opening the same file at once apply each migration exactly once.
 * Times are INTEGER epoch milliseconds. Never edit a released migration: append a new one.
 */
import type { DatabaseSync } from 'node:sqlite'
import { RekeyError } from '../../core/errors.ts'

/** One step of the schema. */
export interface Migration {
  readonly version: number
  readonly name: string
  readonly sql: string
}

export const SQLITE_MIGRATIONS: readonly Migration[] = Object.freeze([
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
  created_at INTEGER NOT NULL
);
CREATE TABLE session_families (
  id TEXT PRIMARY KEY,
  user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  created_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL,
  revoked_at INTEGER,
  revoke_reason TEXT
);
CREATE INDEX session_families_user ON session_families (user_id);
CREATE TABLE refresh_tokens (
  token_hash TEXT PRIMARY KEY,
  family_id TEXT NOT NULL REFERENCES session_families (id) ON DELETE CASCADE,
  kid TEXT NOT NULL,
  issued_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL,
  used_at INTEGER,
  successor_hash TEXT,
  parent_hash TEXT,
  successor_blob TEXT
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_live_kid ON refresh_tokens (kid) WHERE used_at IS NULL;
CREATE TABLE keyset (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  version INTEGER NOT NULL
);
INSERT INTO keyset (id, version) VALUES (1, 0);
CREATE TABLE keys (
  kid TEXT PRIMARY KEY,
  purpose TEXT NOT NULL,
  alg TEXT NOT NULL,
  state TEXT NOT NULL CHECK (state IN ('next', 'current', 'previous', 'retired', 'revoked')),
  sealed_material TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  activated_at INTEGER,
  demoted_at INTEGER,
  retire_after INTEGER,
  retired_at INTEGER,
  revoked_at INTEGER,
  revoke_reason TEXT
);
CREATE UNIQUE INDEX keys_one_current ON keys (purpose) WHERE state = 'current';
CREATE TABLE audit_lock (id INTEGER PRIMARY KEY CHECK (id = 1));
INSERT INTO audit_lock (id) VALUES (1);
CREATE TABLE audit_events (
  seq INTEGER PRIMARY KEY,
  at INTEGER NOT NULL,
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
  last_rotated_at INTEGER,
  last_method TEXT,
  notes TEXT,
  reminders_sent TEXT NOT NULL
);
CREATE TABLE usage_counters (
  kid TEXT NOT NULL,
  instance_id TEXT NOT NULL,
  bucket_start INTEGER NOT NULL,
  result TEXT NOT NULL,
  count INTEGER NOT NULL,
  PRIMARY KEY (kid, instance_id, bucket_start, result)
);
CREATE INDEX usage_counters_bucket ON usage_counters (bucket_start);
CREATE TABLE instances (
  instance_id TEXT PRIMARY KEY,
  hostname TEXT NOT NULL,
  pid INTEGER NOT NULL,
  keyset_version INTEGER NOT NULL,
  started_at INTEGER NOT NULL,
  last_seen INTEGER NOT NULL
);
CREATE TABLE leases (
  name TEXT PRIMARY KEY,
  holder TEXT NOT NULL,
  expires_at INTEGER NOT NULL
);
CREATE TABLE settings (
  name TEXT PRIMARY KEY,
  value TEXT NOT NULL
);
CREATE TABLE change_counters (
  channel TEXT PRIMARY KEY,
  counter INTEGER NOT NULL
);
INSERT INTO change_counters (channel, counter) VALUES ('keys', 0), ('revocations', 0), ('users', 0), ('settings', 0);
`,
  },
  {
    version: 2,
    name: 'sessions at scale: sweep and prune indexes',
    sql: `
CREATE INDEX session_families_live_expiry ON session_families (expires_at, id) WHERE revoked_at IS NULL;
CREATE INDEX session_families_expiry ON session_families (expires_at);
CREATE INDEX session_families_revoked ON session_families (revoked_at) WHERE revoked_at IS NOT NULL;
CREATE INDEX refresh_tokens_used ON refresh_tokens (used_at) WHERE used_at IS NOT NULL;
CREATE INDEX instances_last_seen ON instances (last_seen);
CREATE INDEX audit_events_secret ON audit_events (secret, seq);
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
    name: 'sessions at scale: ended-session lists by listed_at',
    sql: `
-- As on PostgreSQL (where it keeps the emergency's updates HOT): the ended-session lists and
-- pruning read listed_at, which every revocation but the emergency sweep's sets.
ALTER TABLE session_families ADD COLUMN listed_at INTEGER;
UPDATE session_families SET listed_at = revoked_at
 WHERE revoked_at IS NOT NULL AND revoked_at >= CAST(strftime('%s', 'now') AS INTEGER) * 1000 - 86400000;
DROP INDEX session_families_revoked;
CREATE INDEX session_families_listed ON session_families (listed_at) WHERE listed_at IS NOT NULL;
`,
  },
])

/** The schema version this code writes. */
export const SQLITE_SCHEMA_VERSION = Math.max(...SQLITE_MIGRATIONS.map((m) => m.version))

/** Applies pending migrations; ERR_CONFIG if the file was migrated by a newer rekey. */
export function migrateSqlite(db: DatabaseSync, now: number = Date.now()): void {
  db.exec('BEGIN IMMEDIATE')
  try {
    db.exec('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)')
    const applied = new Set(db.prepare('SELECT version FROM schema_migrations').all().map((row) => Number(row.version)))
    const newest = Math.max(0, ...applied)
    if (newest > SQLITE_SCHEMA_VERSION) {
      throw new RekeyError('ERR_CONFIG', `the store's schema (version ${newest}) is newer than this rekey understands (${SQLITE_SCHEMA_VERSION}); upgrade rekey`)
    }
    const record = db.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)')
    for (const m of SQLITE_MIGRATIONS) {
      if (applied.has(m.version)) continue
      db.exec(m.sql)
      record.run(m.version, m.name, now)
    }
    db.exec('COMMIT')
  } catch (err) {
    if (db.isTransaction) db.exec('ROLLBACK')
    throw err
  }
}
