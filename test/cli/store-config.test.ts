/**
 * One store location for every command (issue 9, item 2): with `rekey.config.json`
 * `{"store": ...}`, serve, rotate, status, audit, record, due, backup, restore, admin and
 * rotate-db all use that store, through the real CLI. Before the one resolver, only the
 * managed commands read the config file; backup, restore, audit, record, due and rotate-db
 * used `./.rekey/rekey.db`.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { existsSync, mkdirSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { test } from 'node:test'
import { generateX25519Identity, identityToRecipient } from 'age-encryption'
import { openStore } from '../../src/store/open.ts'
import { runBin, runCli, serveOnce, tempDir } from './helpers.ts'

test('with rekey.config.json {"store": ...} every command uses that store, never ./.rekey', async (t) => {
  const dir = tempDir(t)
  const store = path.join(dir, 'var', 'lib', 'rekey', 'rekey.db')
  mkdirSync(path.dirname(store), { recursive: true })
  writeFileSync(path.join(dir, 'rekey.config.json'), JSON.stringify({ store, cadence: { SMTP_PASSWORD: '30d' } }))
  const env = {
    REKEY_MASTER_KEY: randomBytes(32).toString('base64'),
    REKEY_SCHEDULER: 'off', REKEY_ARGON2_MEMORY_KIB: '64', REKEY_ARGON2_TIME_COST: '1', ADMIN_PW: 'correct horse battery staple',
  }
  // In this process (rekey.config.json is read from the working directory), except where noted.
  const cwd = process.cwd()
  process.chdir(dir)
  t.after(() => process.chdir(cwd))
  const rekey = (...argv: string[]) => runCli(['--operator', 'ops', ...argv], env)

  const served = await serveOnce(['serve', '--port', '0'], { cwd: dir, env })
  assert.ok(served.listening !== null, served.stderr + served.stdout)
  assert.equal(served.listening.store, store, 'serve')

  // The real binary, as an operator runs it.
  const recorded = await runBin(['--json', 'record', 'SMTP_PASSWORD', '--notes', 'rotated in the console'], { cwd: dir, env })
  assert.equal(recorded.code, 0, recorded.stderr)
  const report = JSON.parse(recorded.stdout) as { audit: { store: string }, cadenceDays: number }
  assert.equal(report.audit.store, store, 'record')
  assert.equal(report.cadenceDays, 30, 'record takes the cadence from the same file')

  const due = await rekey('--json', 'due', '--all')
  assert.equal(due.code, 0, due.stderr)
  assert.ok((JSON.parse(due.stdout) as { secrets: Array<{ name: string }> }).secrets.some((s) => s.name === 'SMTP_PASSWORD'), 'due')

  const rotated = await rekey('--json', 'rotate', '--secret', 'access', '--timeout', '5s')
  assert.equal(rotated.code, 0, rotated.stderr)
  const status = await rekey('--json', 'status')
  assert.equal(status.code, 0, status.stderr)
  assert.equal((JSON.parse(status.stdout) as { store: string }).store, store, 'status')

  const admin = await rekey('admin', 'create', '--email', 'ops@example.test', '--password-env', 'ADMIN_PW')
  assert.equal(admin.code, 0, admin.stderr)

  // rotate-db records in the same store: finalize with nothing pending reads it (no admin URL needed).
  const finalize = await rekey('--json', 'finalize', '--secret', 'DATABASE_URL')
  assert.equal(finalize.code, 0, finalize.stderr)
  assert.deepEqual(JSON.parse(finalize.stdout), { variable: 'DATABASE_URL', changed: false })

  const audit = await rekey('--json', 'audit')
  assert.equal(audit.code, 0, audit.stderr)
  const methods = (JSON.parse(audit.stdout) as Array<{ secret: string, method: string }>).map((r) => `${r.secret}:${r.method}`)
  for (const expected of ['SMTP_PASSWORD:manual', 'admin-user:admin-create']) assert.ok(methods.includes(expected), `audit lists ${expected}: ${methods.join(', ')}`)
  const verify = await rekey('audit', '--verify')
  assert.equal(verify.code, 0, verify.stderr)

  // An age recipient, not a passphrase: scrypt would make this test slow.
  const identity = await generateX25519Identity()
  writeFileSync(path.join(dir, 'ops.agekey'), `${identity}\n`, { mode: 0o600 })
  const backup = await rekey('backup', '--out', path.join(dir, 'backups'), '--recipient', await identityToRecipient(identity))
  assert.equal(backup.code, 0, backup.stderr)
  assert.ok(backup.stdout.includes(`sqlite store ${store}`), backup.stdout)
  const archive = /^wrote (\S+)/m.exec(backup.stdout)?.[1] as string
  const restored = await rekey('--json', 'restore', archive, '--force', '--identity', path.join(dir, 'ops.agekey'))
  assert.equal(restored.code, 0, restored.stderr)
  assert.equal((JSON.parse(restored.stdout) as { store: string }).store, store, 'restore')

  assert.equal(existsSync(path.join(dir, '.rekey')), false, 'no command fell back to ./.rekey')
  const opened = await openStore(store)
  try {
    assert.ok((await opened.listAudit()).some((r) => r.method === 'admin-create'), 'admin create wrote to the configured store')
  } finally {
    await opened.close()
  }
})
