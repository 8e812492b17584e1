/**
 * RekeyConfig and the settings table cannot drift: the fields of the RekeyConfig interface
 * (listed below; the type checker refuses the list when the interface gains or loses one) are
 * exactly the settings of SETTINGS plus what loadConfig derives (keySource, configFile,
 * envFile), and the loaded config holds every setting.
 */
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { loadConfig, type RekeyConfig } from '../../src/config/load.ts'
import { SETTINGS } from '../../src/config/schema.ts'

function paths(value: unknown, prefix = ''): string[] {
  if (typeof value !== 'object' || value === null || Array.isArray(value) || prefix === 'cadence') return [prefix]
  if (value.constructor?.name === 'SecretValue') return [prefix]
  return Object.entries(value).flatMap(([key, inner]) => paths(inner, prefix === '' ? key : `${prefix}.${key}`))
}

// Every field of the interface, no more (excess keys) and no fewer (missing keys): checked by tsc.
const FIELDS: Record<keyof RekeyConfig, true> = {
  store: true, port: true, host: true, masterKey: true, masterKeyPrev: true, registration: true, accessKeyAlg: true,
  accessTokenTtl: true, refreshTokenTtl: true, refreshOverlap: true, metricsToken: true, trustProxy: true, logLevel: true,
  issuer: true, audience: true, rateLimit: true, argon2: true, scheduler: true, webhookUrl: true, cadence: true,
  storePoolSize: true, storeListenUrl: true, redisUrl: true, redisPrefix: true, jwksMaxAge: true, finalizeWhenShareBelow: true,
  keySource: true, configFile: true, envFile: true,
}
const DERIVED = ['keySource', 'configFile', 'envFile']

test('the RekeyConfig interface has a field for every setting of the table, and no other', () => {
  const fromTable = new Set(SETTINGS.map((s) => s.path.split('.')[0] as string))
  const fromInterface = new Set(Object.keys(FIELDS).filter((f) => !DERIVED.includes(f)))
  assert.deepEqual([...fromTable].filter((f) => !fromInterface.has(f)), [], 'settings without a RekeyConfig field')
  assert.deepEqual([...fromInterface].filter((f) => !fromTable.has(f)), [], 'RekeyConfig fields without a setting')
})

test('the loaded config holds every setting of the table, and nothing else', (t) => {
  const cwd = mkdtempSync(join(tmpdir(), 'rekey-settings-'))
  t.after(() => rmSync(cwd, { recursive: true, force: true }))
  const key = Buffer.alloc(32, 3).toString('base64')
  const config = loadConfig({
    cwd, env: { REKEY_MASTER_KEY: key, REKEY_MASTER_KEY_PREV: Buffer.alloc(32, 4).toString('base64'), METRICS_AUTH_TOKEN: 'a-metrics-token-long-enough', REKEY_WEBHOOK_URL: 'https://hooks.example.test/x', REKEY_ISSUER: 'i', REKEY_AUDIENCE: 'a', REKEY_ACCESS_KEY_ALG: 'EdDSA' },
  })
  const loaded = new Set(paths(config).filter((p) => !['keySource', 'configFile', 'envFile'].includes(p)))
  const table = new Set(SETTINGS.map((s) => s.path))
  assert.deepEqual([...table].filter((p) => !loaded.has(p)), [], 'settings missing from the config')
  assert.deepEqual([...loaded].filter((p) => !table.has(p)), [], 'config fields no setting defines')
  assert.ok(Object.isFrozen(config))
})
