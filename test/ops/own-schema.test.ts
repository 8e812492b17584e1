/**
 * What counts as rekey's own schema: the reference is rekey's migrations. SQLite through real
 * files (a store made by openStore, then changed with node:sqlite); PostgreSQL through table of
 * contents lines as `pg_restore --list` prints them (the real dumps are in backup-postgres.test.ts).
 */
import assert from 'node:assert/strict'
import path from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import { describe, test } from 'node:test'
import { foreignPostgresEntries, foreignSqliteObjects, parseToc } from '../../src/ops/backup/own-schema.ts'
import { openStore } from '../../src/store/open.ts'
import { tempDir } from './backup-fixtures.ts'

describe('own schema', () => {
  test('SQLite: a fresh store is exactly rekey\'s; an altered table, a trigger, a view, an index and a dropped index are each named', async (t) => {
    const file = path.join(tempDir(t), 'rekey.db')
    await (await openStore(file)).close()
    const db = new DatabaseSync(file)
    try {
      const version = Number(db.prepare('SELECT max(version) AS v FROM schema_migrations').get()?.v)
      assert.deepEqual(foreignSqliteObjects(db, version), [])
      db.exec('ALTER TABLE users ADD COLUMN is_root INTEGER DEFAULT 1')
      db.exec("CREATE TRIGGER t AFTER INSERT ON users BEGIN UPDATE users SET role = 'admin'; END")
      db.exec('CREATE VIEW v AS SELECT 1')
      db.exec('CREATE INDEX users_sneaky ON users (email)')
      db.exec('DROP INDEX audit_events_at')
      assert.deepEqual(foreignSqliteObjects(db, version).sort(), [
        'index users_sneaky on users', 'missing index audit_events_at on audit_events', "table users (its definition differs from rekey's)", 'trigger t on users', 'view v',
      ])
    } finally {
      db.close()
    }
  })

  test('PostgreSQL: rekey\'s entries pass (schema, comment, tables, data, indexes, constraints, sequences of its tables); anything else is named', () => {
    const toc = parseToc([
      ';',
      '; Archive created at 2026-11-30 00:00:00 UTC',
      '4; 2615 2200 SCHEMA - public pg_database_owner',
      '3345; 0 0 COMMENT - SCHEMA public pg_database_owner',
      '214; 1259 19602 TABLE public users postgres',
      '215; 1259 19603 SEQUENCE public users_n_seq postgres',
      '216; 0 0 SEQUENCE OWNED BY public users_n_seq postgres',
      '217; 2604 19604 DEFAULT public users n postgres',
      '3338; 0 19602 TABLE DATA public users postgres',
      '3339; 0 0 SEQUENCE SET public users_n_seq postgres',
      '3190; 2606 19610 CONSTRAINT public users users_email_key postgres',
      '3191; 1259 19611 INDEX public session_families_user postgres',
      '3192; 2620 19612 TRIGGER public users promote postgres',
      '3193; 1255 19613 FUNCTION public promote() postgres',
      '3194; 1259 19614 VIEW public admins postgres',
      '3195; 1259 19615 TABLE public loot postgres',
      '3196; 1259 19616 TABLE other users postgres',
      '3197; 2615 2201 SCHEMA - other postgres',
    ].join('\n'))
    assert.equal(toc.length, 16)
    assert.deepEqual(foreignPostgresEntries(toc, 'public'), [
      'trigger public.users promote', 'function public.promote()', 'view public.admins', 'table public.loot', 'table other.users', 'schema other',
    ])
  })
})
