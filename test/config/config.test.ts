import assert from 'node:assert/strict'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { inspect } from 'node:util'
import { describe, test } from 'node:test'
import { loadConfig } from '../../src/config/load.ts'
import { SETTINGS } from '../../src/config/schema.ts'
import { RekeyError } from '../../src/core/errors.ts'

const MASTER = Buffer.alloc(32, 7).toString('base64')

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'rekey-config-'))
}

describe('loadConfig', () => {
  test('defaults with no environment and no file: embedded store, open registration, 15m/7d/10s', () => {
    const dir = tempDir()
    try {
      const config = loadConfig({ env: {}, cwd: dir })
      assert.equal(config.store, './.rekey/rekey.db')
      assert.equal(config.port, 3000)
      assert.equal(config.host, '127.0.0.1')
      assert.equal(config.registration, 'open')
      assert.equal(config.accessTokenTtl, 900)
      assert.equal(config.refreshTokenTtl, 604_800)
      assert.equal(config.refreshOverlap, 10)
      assert.equal(config.masterKey, undefined)
      assert.equal(config.metricsToken, undefined)
      assert.equal(config.keySource, 'managed')
      assert.equal(config.configFile, null)
      assert.deepEqual(config.argon2, { memoryCost: 19_456, timeCost: 2, parallelism: 1 })
      assert.ok(Object.isFrozen(config) && Object.isFrozen(config.rateLimit))
    } finally {
      rmSync(dir, { recursive: true })
    }
  })

  test('precedence: flag > environment > rekey.config.json > default', () => {
    const dir = tempDir()
    try {
      writeFileSync(join(dir, 'rekey.config.json'), JSON.stringify({ port: 4000, host: '0.0.0.0', registration: 'closed', rateLimit: { loginPerAccount: 3 } }))
      const config = loadConfig({ env: { REKEY_PORT: '5000', REKEY_REGISTRATION: 'open' }, cwd: dir, flags: { port: 6000 } })
      assert.equal(config.port, 6000)
      assert.equal(config.host, '0.0.0.0')
      assert.equal(config.registration, 'open')
      assert.equal(config.rateLimit.loginPerAccount, 3)
      assert.equal(config.configFile, join(dir, 'rekey.config.json'))
    } finally {
      rmSync(dir, { recursive: true })
    }
  })

  test('every problem is reported at once in one ERR_CONFIG, and no secret value is echoed', () => {
    const dir = tempDir()
    try {
      writeFileSync(join(dir, 'rekey.config.json'), JSON.stringify({ prot: 1, masterKey: 'x' }))
      const env = {
        REKEY_MASTER_KEY: 'dG9vLXNob3J0LXNlY3JldA==',
        REKEY_REGISTRATION: 'sometimes',
        JWT_EXPIRATION: 'forever',
        REKEY_REFRESH_OVERLAP: '-3',
        METRICS_AUTH_TOKEN: 'shorttok',
        REKEY_TRUST_PROXY: 'everyone!',
        REKEY_LOG_LEVEL: 'loud',
        REKEY_RATE_LIMIT_LOGIN_IP: '0',
      }
      let error: unknown
      try {
        loadConfig({ env, cwd: dir })
      } catch (err) {
        error = err
      }
      assert.ok(error instanceof RekeyError)
      assert.equal(error.code, 'ERR_CONFIG')
      assert.equal(error.problems.length, 10, error.problems.join('\n'))
      for (const name of ['REKEY_MASTER_KEY', 'REKEY_REGISTRATION', 'JWT_EXPIRATION', 'REKEY_REFRESH_OVERLAP', 'METRICS_AUTH_TOKEN', 'REKEY_TRUST_PROXY', 'REKEY_LOG_LEVEL', 'REKEY_RATE_LIMIT_LOGIN_IP', '"prot"', '"masterKey" is a secret']) {
        assert.ok(error.problems.some((p) => p.includes(name)), `a problem names ${name}`)
      }
      assert.doesNotMatch(error.message, /dG9vLXNob3J0|shorttok|sometimes|forever|everyone/)
    } finally {
      rmSync(dir, { recursive: true })
    }
  })

  test('PostgreSQL without REKEY_MASTER_KEY is a configuration error; the URL password is never echoed', () => {
    assert.throws(() => loadConfig({ env: { REKEY_STORE: 'postgres://rekey:s3cretpw@db/rekey' }, cwd: tmpdir() }), (err: RekeyError) => {
      assert.equal(err.code, 'ERR_CONFIG')
      assert.match(err.message, /REKEY_MASTER_KEY is required with a PostgreSQL store/)
      assert.doesNotMatch(err.message, /s3cretpw/)
      return true
    })
  })

  test('an explicit --config file must exist and hold valid JSON', () => {
    assert.throws(() => loadConfig({ env: {}, configFile: '/nonexistent/rekey.json' }), /cannot be read/)
    const dir = tempDir()
    try {
      writeFileSync(join(dir, 'c.json'), '{ nope')
      assert.throws(() => loadConfig({ env: {}, cwd: dir, configFile: 'c.json' }), /not valid JSON/)
    } finally {
      rmSync(dir, { recursive: true })
    }
  })

  test('JWT_* variables select env mode, and their problems join the same report', () => {
    const config = loadConfig({ env: { JWT_SECRET: 'a'.repeat(64), JWT_REFRESH_SECRET: 'b'.repeat(64) }, cwd: tmpdir() })
    assert.equal(config.keySource, 'env')
    assert.throws(() => loadConfig({ env: { JWT_SECRET: 'short', REKEY_REGISTRATION: 'x' }, cwd: tmpdir() }), (err: RekeyError) => {
      assert.ok(err.problems.some((p) => p.includes('REKEY_REGISTRATION')))
      assert.ok(err.problems.some((p) => p.includes('JWT_REFRESH_SECRET is not set')))
      assert.ok(err.problems.some((p) => p.includes('32 are required')))
      assert.doesNotMatch(err.message, /short/)
      return true
    })
  })

  test('secrets are held so that printing the config never shows them', () => {
    const token = 'metrics-token-0123456789abcdef'
    const config = loadConfig({ env: { REKEY_MASTER_KEY: MASTER, METRICS_AUTH_TOKEN: token }, cwd: tmpdir() })
    assert.equal(config.masterKey?.reveal().length, 32)
    assert.equal(config.metricsToken?.reveal().toString(), token)
    for (const text of [inspect(config, { depth: 5 }), JSON.stringify(config), String(config.masterKey)]) {
      assert.ok(!text.includes(token) && !text.includes(MASTER), 'no secret in the printed config')
    }
  })

  test('every setting of the schema is documented in docs/configuration.md', async () => {
    const { readFileSync } = await import('node:fs')
    const doc = readFileSync(new URL('../../docs/configuration.md', import.meta.url), 'utf8')
    for (const spec of SETTINGS) {
      if (spec.env !== undefined) assert.ok(doc.includes(`\`${spec.env}\``), `${spec.env} is documented`)
    }
  })
})
