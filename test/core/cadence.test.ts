import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { cadenceDaysOf, DEFAULT_POLICY, dueStatus, guessKind, parseCadencePolicy } from '../../src/core/cadence.ts'

const DAY = 86_400_000

describe('cadence policy', () => {
  it('guesses the kind from the name', () => {
    const cases: Record<string, string> = {
      JWT_SECRET: 'jwt', JWT_REFRESH_SECRET: 'jwt', access: 'jwt', refresh: 'jwt',
      SMTP_PASSWORD: 'smtp', SENDGRID_API_KEY: 'smtp',
      DATABASE_URL: 'database', READONLY_DATABASE_URL: 'database', DB_PASSWORD: 'database', REDIS_URL: 'database',
      AWS_SECRET_ACCESS_KEY: 'storage', S3_SECRET: 'storage', GCS_KEY: 'storage',
      METRICS_AUTH_TOKEN: 'token', STRIPE_API_KEY: 'token', TWILIO_AUTH_TOKEN: 'token',
      LEGACY_SIGNING_PASSPHRASE: 'manual',
    }
    for (const [name, kind] of Object.entries(cases)) assert.equal(guessKind(name), kind, name)
  })

  it('follows the runbook defaults: JWT keys 90 d, the rest 180 d', () => {
    for (const [name, kind, days] of [['JWT_SECRET', 'jwt', 90], ['METRICS_AUTH_TOKEN', 'token', 180], ['SMTP_PASSWORD', 'smtp', 180],
      ['AWS_SECRET_ACCESS_KEY', 'storage', 180], ['DATABASE_URL', 'database', 180], ['X', 'manual', 180], ['Y', 'something-new', 180]] as const) {
      assert.equal(cadenceDaysOf(DEFAULT_POLICY, name, kind), days, name)
    }
  })

  it('is overridden by name, then by kind', () => {
    const policy = parseCadencePolicy({ JWT_SECRET: '30d', 'kind:database': '365d', 'kind:jwt': '12w', SMTP_PASSWORD: '1y' })
    assert.equal(cadenceDaysOf(policy, 'JWT_SECRET', 'jwt'), 30)
    assert.equal(cadenceDaysOf(policy, 'JWT_REFRESH_SECRET', 'jwt'), 84)
    assert.equal(cadenceDaysOf(policy, 'DATABASE_URL', 'database'), 365)
    assert.equal(cadenceDaysOf(policy, 'SMTP_PASSWORD', 'smtp'), 365)
    assert.equal(cadenceDaysOf(policy, 'METRICS_AUTH_TOKEN', 'token'), 180)
  })

  it('reports every bad entry at once', () => {
    assert.throws(() => parseCadencePolicy({ A: '30', B: '12h', C: 30, 'kind:': '30d', D: '30d' }, 'rekey.config.json'), (err: Error & { code?: string, problems?: string[] }) => {
      assert.equal(err.code, 'ERR_CONFIG')
      assert.equal(err.problems?.length, 4)
      assert.match(err.message, /rekey.config.json: cadence "A" must be a duration of at least one day with a unit/)
      return true
    })
    assert.throws(() => parseCadencePolicy(['30d']), /must be an object/)
    assert.equal(parseCadencePolicy(undefined), DEFAULT_POLICY)
  })
})

describe('dueStatus', () => {
  const t0 = Date.parse('2026-01-01T00:00:00Z')
  const jwt = { cadenceDays: 90, lastRotatedAt: t0 }

  it('is ok, then due within the window, then overdue past the due date', () => {
    assert.deepEqual(dueStatus(jwt, t0 + 10 * DAY, 7 * DAY), { status: 'ok', dueAt: t0 + 90 * DAY })
    assert.equal(dueStatus(jwt, t0 + 83 * DAY - 1, 7 * DAY).status, 'ok')
    assert.equal(dueStatus(jwt, t0 + 83 * DAY, 7 * DAY).status, 'due')
    assert.equal(dueStatus(jwt, t0 + 90 * DAY, 7 * DAY).status, 'due', 'the due date itself is still due')
    assert.equal(dueStatus(jwt, t0 + 90 * DAY + 1, 7 * DAY).status, 'overdue')
    assert.equal(dueStatus(jwt, t0 + 60 * DAY, 30 * DAY).status, 'due', 'a wider window sees it sooner')
  })

  it('counts a never-rotated secret from when it was first seen, and calls an unknown age due', () => {
    assert.equal(dueStatus({ cadenceDays: 180, lastRotatedAt: null, firstSeenAt: t0 }, t0 + 181 * DAY, 0).status, 'overdue')
    assert.deepEqual(dueStatus({ cadenceDays: 180, lastRotatedAt: null }, t0, 0), { status: 'due', dueAt: null })
  })
})
