/**
 * The managed rotation rules on a frozen clock: grace windows, finalize refusals with counts
 * and safe-at times, two rotations in a row, rollback, revoke and emergency.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import {
  finalizeCheck, graceMs, phaseOf, planEmergency, planFinalize, planPromote, planRevoke, planRollback, planStage,
  type KeyChange, type RuleKey,
} from '../../src/core/rotation-rules.ts'
import { RekeyError } from '../../src/core/errors.ts'

const T0 = Date.UTC(2025, 0, 1)
const MIN = 60_000
const policy = { lifetimes: { access: 900, refresh: 86_400 }, skewSeconds: 60 }

function key(kid: string, state: RuleKey['state'], purpose = 'access', extra: Partial<RuleKey> = {}): RuleKey {
  return { kid, purpose, state, createdAt: T0, activatedAt: state === 'current' ? T0 : null, demotedAt: null, retireAfter: null, ...extra }
}

/** Applies changes as the store would, for multi-step scenarios. */
function apply(keys: readonly RuleKey[], changes: readonly KeyChange[]): RuleKey[] {
  return keys.map((k) => {
    const c = changes.find((x) => x.kid === k.kid)
    if (c === undefined) return k
    assert.equal(k.state, c.expectState, `expectState of ${k.kid}`)
    const { kid: _kid, expectState: _e, ...rest } = c
    return { ...k, ...Object.fromEntries(Object.entries(rest).filter(([, v]) => v !== undefined)) } as RuleKey
  })
}

function refusal(fn: () => unknown, code: string, pattern: RegExp): RekeyError {
  let caught: unknown
  try {
    fn()
  } catch (err) {
    caught = err
  }
  assert.ok(caught instanceof RekeyError, 'expected a RekeyError')
  assert.equal(caught.code, code)
  assert.match(caught.message, pattern)
  return caught
}

describe('grace window', () => {
  test('is the token lifetime plus 60 s skew, never shorter than the lifetime', () => {
    assert.equal(graceMs(policy, 'access'), (900 + 60) * 1000)
    assert.equal(graceMs(policy, 'refresh'), (86_400 + 60) * 1000)
    assert.equal(graceMs({ lifetimes: { access: 900 } }, 'access'), 960_000)
    refusal(() => graceMs(policy, 'webhook'), 'ERR_CONFIG', /no token lifetime is configured for webhook keys/)
    refusal(() => graceMs({ lifetimes: { access: 900 }, skewSeconds: -1 }, 'access'), 'ERR_CONFIG', /skew/)
  })
})

describe('rotate: stage then promote', () => {
  test('stages a next key, or resumes the one already staged', () => {
    const keys = [key('a1', 'current')]
    assert.deepEqual(planStage(keys, 'access'), { stage: true })
    assert.deepEqual(planStage([...keys, key('a2', 'next')], 'access'), { stage: false, next: 'a2' })
    refusal(() => planStage([], 'access'), 'ERR_CONFIG', /no current access key.*rekey serve/)
    assert.equal(phaseOf([...keys, key('a2', 'next')], 'access'), 'staged')
  })

  test('promote: next signs, current becomes previous with retire_after = demotion + lifetime + skew', () => {
    const now = T0 + 10 * MIN
    const changes = planPromote([key('a1', 'current'), key('a2', 'next')], 'access', now, policy)
    assert.deepEqual(changes, [
      { kid: 'a1', expectState: 'current', state: 'previous', demotedAt: now, retireAfter: now + 960_000 },
      { kid: 'a2', expectState: 'next', state: 'current', activatedAt: now },
    ])
    assert.equal(planPromote([key('a1', 'current')], 'access', now, policy), null)
  })

  test('promote --hard revokes the old current and every previous key', () => {
    const changes = planPromote([key('a0', 'previous'), key('a1', 'current'), key('a2', 'next')], 'access', T0, policy, { hard: true }) ?? []
    assert.deepEqual(changes.map((c) => [c.kid, c.state]), [['a1', 'revoked'], ['a0', 'revoked'], ['a2', 'current']])
  })

  test('two rotations in a row keep both old keys verifying until each window has passed', () => {
    let keys: RuleKey[] = [key('a1', 'current')]
    const t1 = T0
    keys = apply([...keys, key('a2', 'next')], planPromote([...keys, key('a2', 'next')], 'access', t1, policy) ?? [])
    const t2 = t1 + 5 * MIN // a second rotation while a1's tokens are still valid
    keys = apply([...keys, key('a3', 'next')], planPromote([...keys, key('a3', 'next')], 'access', t2, policy) ?? [])
    assert.deepEqual(keys.map((k) => [k.kid, k.state]), [['a1', 'previous'], ['a2', 'previous'], ['a3', 'current']])
    // A token signed by a1 just before t1 lives until t1 + 900 s: finalize is refused until a2 is safe too.
    const err = refusal(() => planFinalize(keys, ['access'], t1 + 14 * MIN, policy, new Map()), 'ERR_UNSAFE', /finalize refused/)
    assert.equal(err.problems.length, 2)
    // a1 is safe after its window but a2 is not: still refused (all or nothing), naming only a2.
    const partial = refusal(() => planFinalize(keys, ['access'], t1 + 16 * MIN + 1, policy, new Map()), 'ERR_UNSAFE', /access key a2/)
    assert.equal(partial.problems.length, 1)
    assert.match(partial.message, new RegExp(`safe from ${new Date(t2 + 960_000).toISOString()}`))
    const plan = planFinalize(keys, ['access'], t2 + 960_000, policy, new Map())
    assert.deepEqual(plan.changes.map((c) => [c.kid, c.state]), [['a1', 'retired'], ['a2', 'retired']])
    assert.equal(plan.forced, false)
  })
})

describe('finalize safety', () => {
  const demoted = T0
  const access = key('a1', 'previous', 'access', { demotedAt: demoted, retireAfter: demoted + 960_000 })
  const refresh = key('r1', 'previous', 'refresh', { demotedAt: demoted, retireAfter: demoted + 86_460_000 })

  test('access keys: refused before retire_after with the time it becomes safe; safe at retire_after', () => {
    const err = refusal(() => planFinalize([access], ['access'], demoted + 959_999, policy, new Map()), 'ERR_UNSAFE',
      /access key a1: access tokens it signed can be valid until 2025-01-01T00:16:00\.000Z.*finalize is safe from 2025-01-01T00:16:00\.000Z.*--force/)
    assert.equal(err.problems.length, 1)
    assert.equal(planFinalize([access], ['access'], demoted + 960_000, policy, new Map()).changes.length, 1)
  })

  test('refresh keys: refused while live sessions hold their tokens, with the count; safe at zero sessions', () => {
    const live = new Map([['r1', 3]])
    refusal(() => planFinalize([refresh], ['refresh'], demoted + MIN, policy, live), 'ERR_UNSAFE',
      /refresh key r1: 3 live session\(s\) hold a refresh token it signed; safe once they end or at 2025-01-02T00:01:00\.000Z/)
    const check = finalizeCheck(refresh, demoted + MIN, policy, live)
    assert.deepEqual({ safe: check.safe, liveSessions: check.liveSessions, safeAt: check.safeAt }, { safe: false, liveSessions: 3, safeAt: demoted + 86_460_000 })
    const plan = planFinalize([refresh], ['refresh'], demoted + MIN, policy, new Map([['r1', 0]]))
    assert.deepEqual(plan.changes, [{ kid: 'r1', expectState: 'previous', state: 'retired', retiredAt: demoted + MIN }])
    // Past its lifetime, live rows no longer matter (they have expired).
    assert.equal(planFinalize([refresh], ['refresh'], demoted + 86_460_000, policy, live).changes.length, 1)
  })

  test('--force retires unsafe keys and says it was forced; purposes not named are left alone', () => {
    const plan = planFinalize([access, refresh], ['access'], demoted, policy, new Map(), { force: true })
    assert.deepEqual(plan.changes.map((c) => c.kid), ['a1'])
    assert.equal(plan.forced, true)
    assert.equal(planFinalize([key('a2', 'current')], ['access'], demoted, policy, new Map()).changes.length, 0)
  })

  test('a previous key with no demotion time is only retired by --force', () => {
    const odd = key('a9', 'previous')
    refusal(() => planFinalize([odd], ['access'], T0, policy, new Map()), 'ERR_UNSAFE', /demotion time is unknown/)
  })
})

describe('rollback, revoke, emergency', () => {
  test('rollback: the latest previous key signs again; the current one gets a full grace window', () => {
    const keys = [
      key('a0', 'previous', 'access', { demotedAt: T0 - 2 * MIN }),
      key('a1', 'previous', 'access', { demotedAt: T0 - MIN }),
      key('a2', 'current'),
    ]
    const changes = planRollback(keys, 'access', T0, policy)
    assert.deepEqual(changes, [
      { kid: 'a2', expectState: 'current', state: 'previous', demotedAt: T0, retireAfter: T0 + 960_000 },
      { kid: 'a1', expectState: 'previous', state: 'current', activatedAt: T0, demotedAt: null, retireAfter: null },
    ])
    refusal(() => planRollback([key('a1', 'retired'), key('a2', 'current')], 'access', T0, policy), 'ERR_UNSAFE', /no previous key/)
  })

  test('revoke: next/previous/retired keys are revoked; the current key is refused; revoked and unknown are reported', () => {
    const keys = [key('a0', 'retired'), key('a1', 'previous'), key('a2', 'current'), key('a3', 'next'), key('a4', 'revoked')]
    for (const kid of ['a0', 'a1', 'a3']) {
      const plan = planRevoke(keys, kid, T0, 'leaked')
      assert.equal(plan.kind, 'revoke')
      if (plan.kind === 'revoke') assert.deepEqual(plan.change, { kid, expectState: plan.key.state, state: 'revoked', revokedAt: T0, revokeReason: 'leaked' })
    }
    refusal(() => planRevoke(keys, 'a2', T0, 'x'), 'ERR_UNSAFE', /a2 is the current access key.*rekey emergency --secret access.*rotate --secret access --hard/)
    assert.equal(planRevoke(keys, 'a4', T0, 'x').kind, 'unchanged')
    assert.equal(planRevoke(keys, 'zz', T0, 'x').kind, 'unknown')
  })

  test('emergency: every verifying key of the named purposes is revoked; retired keys and other purposes stay', () => {
    const keys = [key('a0', 'retired'), key('a1', 'previous'), key('a2', 'current'), key('a3', 'next'), key('r1', 'current', 'refresh')]
    const changes = planEmergency(keys, ['access'], T0, 'emergency: leak')
    assert.deepEqual(changes.map((c) => [c.kid, c.expectState, c.state]), [['a1', 'previous', 'revoked'], ['a2', 'current', 'revoked'], ['a3', 'next', 'revoked']])
    assert.ok(changes.every((c) => c.revokedAt === T0 && c.revokeReason === 'emergency: leak'))
    assert.deepEqual(planEmergency(keys, ['access', 'refresh'], T0, 'x').map((c) => c.kid), ['a1', 'a2', 'a3', 'r1'])
  })
})
