import assert from 'node:assert/strict'
import { generateKeyPairSync, randomBytes } from 'node:crypto'
import { describe, it } from 'node:test'
import { MASKED, maskSecrets, maskValue } from '../../src/core/mask.ts'

// Built at run time so that no scanner mistakes this file for a leak.
const JWT = ['eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6ImFiYyJ9', 'eyJzdWIiOiJ1c2VyLTEiLCJpYXQiOjE3MDAwMDAwMDB9', 'c2lnbmF0dXJlLWJ5dGVzLWhlcmUtcmVhbGx5']
  .join('.')
const HEX = randomBytes(32).toString('hex')
const B64 = 'q8Zk3VJ0mD9xYwR2bT7uLc5N'
const PEM = generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()

function assertGone(out: string, secret: string): void {
  assert.ok(!out.includes(secret), `the secret survived: ${out}`)
  assert.ok(out.includes(MASKED), `nothing was masked: ${out}`)
}

describe('maskSecrets', () => {
  it('leaves ordinary notes alone', () => {
    for (const note of [
      'rotated after offboarding Bob, ticket OPS-1234',
      'quarterly rotation per runbook; see https://wiki.example.com/runbooks/jwt-rotation#step-3',
      'new key issued in the provider console by alice@example.com on 2026-03-01',
      'request 123e4567-e89b-12d3-a456-426614174000 from the admin API',
      'token: expired, secret: rotated, author: Bob',
      'AWS_SECRET_ACCESS_KEY and JWT_SECRET_PREV rotated; signing kid iYXQREedZXVbJG_c -> GO19p_FjxaTHCcQA',
      'DATABASE_URL now points at postgres://app@db.internal:5432/app',
      '',
    ]) assert.equal(maskSecrets(note), note)
  })

  it('masks a JWT to its first four characters', () => {
    const out = maskSecrets(`user pasted Bearer ${JWT} by mistake`)
    assertGone(out, JWT)
    assert.equal(out, `user pasted Bearer eyJh${MASKED} by mistake`)
  })

  it('masks PEM private keys, whole or cut off', () => {
    const out = maskSecrets(`old key was\n${PEM}\nretired`)
    assert.ok(!out.includes('PRIVATE KEY-----\nMC'), out)
    assert.equal(out, `old key was\n----${MASKED}\n\nretired`)
    const cut = PEM.slice(0, 60)
    assert.equal(maskSecrets(`half: ${cut}`), `half: ----${MASKED}`)
  })

  it('masks long hex and mixed base64 runs, not short or single-class ones', () => {
    assert.equal(maskSecrets(`JWT_SECRET was ${HEX}`), `JWT_SECRET was ${HEX.slice(0, 4)}${MASKED}`)
    assert.equal(maskSecrets(`key ${B64} rotated`), `key q8Zk${MASKED} rotated`)
    const base64url = randomBytes(32).toString('base64url').replace(/^[^A-Za-z]*/, 'A') + 'a1'
    assertGone(maskSecrets(`value ${base64url}`), base64url)
    assert.equal(maskSecrets('commit abc123def456'), 'commit abc123def456')
    assert.equal(maskSecrets('path /var/lib/rekey/backups/nightly'), 'path /var/lib/rekey/backups/nightly')
  })

  it('masks values of password=, secret:, token= and friends', () => {
    assert.equal(maskSecrets('password=hunter22'), `password=hu${MASKED}`)
    assert.equal(maskSecrets('password: hunter'), `password: h${MASKED}`)
    assert.equal(maskSecrets('secret: s3cr3t-value!'), `secret: s3c${MASKED}`)
    assert.equal(maskSecrets('SMTP_PASSWORD="correct horse battery"'), `SMTP_PASSWORD="corr${MASKED}"`)
    assert.equal(maskSecrets('set token=abc and api_key: XyZ123456'), `set token=${MASKED} and api_key: Xy${MASKED}`)
  })

  it('masks the password of a URL and keeps the rest', () => {
    assert.equal(maskSecrets('old DATABASE_URL postgres://app:S3cret!pw@db:5432/app'), 'old DATABASE_URL postgres://app:***@db:5432/app')
    assert.equal(maskSecrets('redis://:pw123@cache:6379'), 'redis://:***@cache:6379')
  })

  it('masks vendor tokens and any exact live secret', () => {
    const slack = ['xoxb', '123456789012', 'abcdefghijklmnop'].join('-')
    assertGone(maskSecrets(`webhook ${slack}`), slack)
    const live = 'plain words secret'
    assert.equal(maskSecrets(`they pasted plain words secret here`, { liveSecrets: [live, 'short'] }), `they pasted plai${MASKED} here`)
  })

  it('is idempotent', () => {
    const once = maskSecrets(`a ${JWT} b password=hunter22 c ${HEX} d postgres://u:p@h/db`)
    assert.equal(maskSecrets(once), once)
  })

  it('shows at most 4 characters, fewer of short values', () => {
    assert.equal(maskValue('abcdefghijklmnop'), `abcd${MASKED}`)
    assert.equal(maskValue('abcdefg'), `a${MASKED}`)
    assert.equal(maskValue('abc'), MASKED)
  })
})
