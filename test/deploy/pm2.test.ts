/** The PM2 ecosystem file loads with require(), names the app, and reads secrets from the env file. */
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import os from 'node:os'
import path from 'node:path'
import { test } from 'node:test'

const FILE = path.resolve(import.meta.dirname, '../../examples/pm2/ecosystem.config.cjs')

interface Ecosystem { apps: Array<{ name: string, script: string, args: string, exec_mode: string, kill_timeout: number, env_production: Record<string, string> }> }

test('ecosystem.config.cjs: the rekey app in cluster mode (pm2 reload is rolling), secrets from REKEY_ENV_FILE', (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'rekey-pm2-'))
  t.after(() => { rmSync(dir, { recursive: true, force: true }); delete process.env.REKEY_ENV_FILE })
  writeFileSync(path.join(dir, 'rekey.env'), '# keys\nJWT_SECRET="abc"\nexport REKEY_MASTER_KEY=xyz\n')
  process.env.REKEY_ENV_FILE = path.join(dir, 'rekey.env')
  const config = createRequire(import.meta.url)(FILE) as Ecosystem
  const app = config.apps[0]
  assert.equal(config.apps.length, 1)
  assert.equal(app?.name, 'rekey')
  assert.equal(app?.args, 'serve')
  assert.match(app?.script ?? '', /bin\/rekey\.js$/)
  assert.equal(app?.exec_mode, 'cluster')
  assert.ok((app?.kill_timeout ?? 0) > 10_000, 'longer than the 10 s drain')
  assert.equal(app?.env_production.JWT_SECRET, 'abc')
  assert.equal(app?.env_production.REKEY_MASTER_KEY, 'xyz')
  assert.equal(app?.env_production.NODE_ENV, 'production')
})
