/**
 * Every SQLSTATE that means "the database is not serving you" is ERR_STORE_UNAVAILABLE (issue
 * 11, item 8), including the ones no test can make a PostgreSQL server send on demand (class
 * 08, a crash 57P02, "starting up" 57P03, an idle session timeout 57P05, 53100 disk full...).
 * The errors are pg's own DatabaseError, as the driver raises them; the common ones are also
 * produced for real against a running `rekey serve` in pg-unavailable.test.ts and
 * pg-scram.test.ts. Errors that are the query's fault stay as they are (a bug, a 500).
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import pg from 'pg'
import { mapPgError } from '../../src/store/postgres/pg-errors.ts'

function serverError(code: string, message = 'from the server'): Error {
  const err = new pg.DatabaseError(message, message.length, 'error')
  err.code = code
  return err
}

const codeOf = (err: unknown): unknown => (err as { code?: unknown }).code

test('classes 08, 53, 57P and 28, 3D000 and 55000 "not accepting connections" are ERR_STORE_UNAVAILABLE, naming the store', () => {
  for (const code of ['08000', '08001', '08003', '08004', '08006', '08P01', '53000', '53100', '53200', '53300', '53400',
    '57P01', '57P02', '57P03', '57P04', '57P05', '28000', '28P01', '3D000']) {
    const mapped = mapPgError(serverError(code), 'postgres://db/rekey')
    assert.equal(codeOf(mapped), 'ERR_STORE_UNAVAILABLE', code)
    assert.match((mapped as Error).message, /^the PostgreSQL store postgres:\/\/db\/rekey is unavailable/, code)
  }
  const notAccepting = mapPgError(serverError('55000', 'database "rekey" is not currently accepting connections'), 'postgres://db/rekey')
  assert.equal(codeOf(notAccepting), 'ERR_STORE_UNAVAILABLE')
  assert.match((notAccepting as Error).message, /the database is not accepting connections 55000/)
})

test('errors that are the query\'s own are not "unavailable": 55000 of another kind, 57P-like codes of other classes, syntax, missing table', () => {
  for (const [code, message] of [['55000', 'prepared transactions are disabled'], ['55006', 'database "x" is being accessed by other users'],
    ['42601', 'syntax error'], ['42P01', 'relation "users" does not exist'], ['22P02', 'invalid input syntax'], ['23502', 'null value']] as const) {
    const err = serverError(code, message)
    assert.equal(mapPgError(err, 'postgres://db/rekey'), err, code)
  }
  assert.equal(codeOf(mapPgError(serverError('23505'), 'postgres://db/rekey')), 'ERR_CONFLICT')
  assert.equal(codeOf(mapPgError(serverError('40001'), 'postgres://db/rekey')), 'ERR_CONFLICT')
})
