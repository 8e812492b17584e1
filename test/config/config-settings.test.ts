/**
 * RekeyConfig is derived from the settings table (`src/config/schema.ts`), so the two cannot
 * drift by construction. What is left to check: the derivation gives each kind of setting the
 * type a reader expects (checked by tsc, which `npm test` runs first), and the loader fills
 * exactly the table's settings at run time.
 */
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import type { ManagedAlg } from '../../src/core/algorithms.ts'
import { DEFAULT_POLICY, type CadencePolicy } from '../../src/core/cadence.ts'
import { loadConfig, type RekeyConfig } from '../../src/config/load.ts'
import { SecretValue } from '../../src/config/secret-value.ts'
import { SETTINGS } from '../../src/config/schema.ts'

function paths(value: unknown, prefix = ''): string[] {
  if (typeof value !== 'object' || value === null || Array.isArray(value) || prefix === 'cadence') return [prefix]
  if (value.constructor?.name === 'SecretValue') return [prefix]
  return Object.entries(value).flatMap(([key, inner]) => paths(inner, prefix === '' ? key : `${prefix}.${key}`))
}

type Equal<X, Y> = (<T>() => T extends X ? 1 : 2) extends (<T>() => T extends Y ? 1 : 2) ? true : false
type Expect<T extends true> = T

/** Fails the typecheck when the derived type of a kind of setting changes. */
export type DerivedTypes = [
  Expect<Equal<RekeyConfig['port'], number>>, // a default: never absent
  Expect<Equal<RekeyConfig['issuer'], string | undefined>>, // no default: may be absent
  Expect<Equal<RekeyConfig['masterKey'], SecretValue | undefined>>, // a secret: wrapped, never a plain value
  Expect<Equal<RekeyConfig['metricsToken'], SecretValue | undefined>>,
  Expect<Equal<RekeyConfig['accessKeyAlg'], ManagedAlg | undefined>>, // one of a list: the union
  Expect<Equal<RekeyConfig['logLevel'], 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent'>>,
  Expect<Equal<RekeyConfig['trustProxy'], boolean | number | string>>,
  Expect<Equal<RekeyConfig['rateLimit']['window'], number>>, // a dotted path: nested one level
  Expect<Equal<RekeyConfig['scheduler']['enabled'], 'on' | 'off'>>,
  Expect<Equal<RekeyConfig['cadence'], CadencePolicy>>,
  Expect<Equal<RekeyConfig['configFile'], string | null>>, // derived by loadConfig, not a setting
]

test('each kind of setting loads as its derived type says', (t) => {
  const cwd = mkdtempSync(join(tmpdir(), 'rekey-settings-'))
  t.after(() => rmSync(cwd, { recursive: true, force: true }))
  const config = loadConfig({ cwd, env: { REKEY_MASTER_KEY: Buffer.alloc(32, 3).toString('base64'), REKEY_ACCESS_KEY_ALG: 'eddsa' } })
  assert.equal(config.port, 3000)
  assert.equal(config.issuer, undefined)
  assert.ok(config.masterKey instanceof SecretValue)
  assert.equal(config.metricsToken, undefined)
  assert.equal(config.accessKeyAlg, 'EdDSA')
  assert.equal(config.rateLimit.window, 60)
  assert.equal(config.scheduler.enabled, 'on')
  assert.deepEqual(config.cadence, DEFAULT_POLICY)
  assert.equal(config.configFile, null)
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
