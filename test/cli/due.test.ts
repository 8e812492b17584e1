import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import path from 'node:path'
import { describe, it, mock } from 'node:test'
import { DEFAULT_POLICY } from '../../src/core/cadence.ts'
import { AuditLog } from '../../src/service/audit/audit-log.ts'
import { trackSecret } from '../../src/service/inventory/inventory.ts'
import { openStore } from '../../src/store/open.ts'
import { runBin, runCli, tempDir } from './helpers.ts'

const DAY = 86_400_000
const OPS = ['--operator', 'alice']
const T0 = Date.parse('2026-01-05T09:00:00Z')

interface DueJson {
  within: string
  tracked: number
  overdue: number
  secrets: { name: string, kind: string, cadenceDays: number, lastRotatedAt: string | null, lastMethod: string | null, firstSeenAt: string | null, dueAt: string | null, status: string }[]
}

function envFile(dir: string, extra = ''): string {
  const file = path.join(dir, '.env')
  writeFileSync(file, `JWT_SECRET=${randomBytes(32).toString('hex')}\n${extra}`)
  return file
}

function freeze(t: { after: (fn: () => void) => void }, now: number): void {
  mock.timers.enable({ apis: ['Date'], now })
  t.after(() => mock.timers.reset())
}

describe('rekey record and rekey due', () => {
  it('a secret goes from ok to due within 7d to overdue (exit 1), and a rotation makes it ok again', async (t) => {
    const dir = tempDir(t)
    const file = envFile(dir)
    freeze(t, T0)
    const due = (...argv: string[]): ReturnType<typeof runCli> => runCli(['--env-file', file, 'due', ...argv])

    assert.equal((await runCli(['--env-file', file, ...OPS, 'rotate'])).code, 0)
    const recorded = await runCli(['--env-file', file, ...OPS, 'record', 'SMTP_PASSWORD', '--method', 'provider console'])
    assert.equal(recorded.code, 0, recorded.stderr)
    assert.equal(recorded.stdout, 'recorded a rotation of SMTP_PASSWORD (smtp, every 180 d) at 2026-01-05T09:00:00Z; next due 2026-07-04T09:00:00Z; audit row 2\n')

    const fresh = await due()
    assert.equal(fresh.code, 0)
    assert.equal(fresh.stdout, 'nothing is due within 7 days (2 secrets tracked)\n')

    mock.timers.setTime(T0 + 83 * DAY)
    const soon = await due()
    assert.equal(soon.code, 0, 'due is not overdue')
    assert.equal(soon.stdout, [
      '| Secret | Kind | Last rotated | Due at | Status |',
      '| --- | --- | --- | --- | --- |',
      '| JWT_SECRET | jwt | 2026-01-05T09:00:00Z (rotate) | 2026-04-05T09:00:00Z | due |',
      '',
    ].join('\n'))

    mock.timers.setTime(T0 + 90 * DAY + 1000)
    const late = await due()
    assert.equal(late.code, 1)
    assert.match(late.stdout, /\| JWT_SECRET \| jwt \| .* \| overdue \|/)
    assert.equal(late.stderr, 'rekey: ERR_REFUSED: 1 overdue for rotation: JWT_SECRET\n')

    const wide = await runCli(['--env-file', file, '--json', 'due', '--within', '90d'])
    assert.equal(wide.code, 1)
    const report = JSON.parse(wide.stdout) as DueJson
    assert.deepEqual({ ...report, secrets: report.secrets.map((s) => [s.name, s.status]) }, {
      within: '90d', tracked: 2, overdue: 1, secrets: [['JWT_SECRET', 'overdue'], ['SMTP_PASSWORD', 'due']],
    })
    assert.deepEqual(report.secrets[1], {
      name: 'SMTP_PASSWORD', kind: 'smtp', cadenceDays: 180, lastRotatedAt: '2026-01-05T09:00:00.000Z', lastMethod: 'provider console',
      firstSeenAt: null, dueAt: '2026-07-04T09:00:00.000Z', status: 'due',
    })

    // The env-file rotation marks the inventory, so due sees it.
    assert.equal((await runCli(['--env-file', file, ...OPS, 'rotate', '--hard'])).code, 0)
    const after = await due('--all')
    assert.equal(after.code, 0)
    assert.match(after.stdout, /\| JWT_SECRET \| jwt \| 2026-04-05T09:00:01Z \(rotate --hard\) \| 2026-07-04T09:00:01Z \| ok \|/)
  })

  it('counts a secret never rotated from when it was first recorded', async (t) => {
    const dir = tempDir(t)
    const db = path.join(dir, 'rekey.db')
    const store = await openStore(db)
    const audit = await AuditLog.open(store, { current: randomBytes(32) })
    const tracked = await trackSecret(store, audit, DEFAULT_POLICY, { secret: 'METRICS_AUTH_TOKEN', operator: 'rekey', at: T0 })
    assert.equal(tracked.kind, 'token')
    assert.equal((await trackSecret(store, audit, DEFAULT_POLICY, { secret: 'METRICS_AUTH_TOKEN', operator: 'rekey', at: T0 + DAY })).kind, 'token')
    assert.equal((await store.listAudit()).length, 1, 'tracking twice writes one row')
    await store.close()

    freeze(t, T0 + 100 * DAY)
    const ok = await runCli(['--store', db, '--json', 'due', '--all'])
    assert.equal(ok.code, 0)
    assert.deepEqual((JSON.parse(ok.stdout) as DueJson).secrets[0], {
      name: 'METRICS_AUTH_TOKEN', kind: 'token', cadenceDays: 180, lastRotatedAt: null, lastMethod: null,
      firstSeenAt: '2026-01-05T09:00:00.000Z', dueAt: '2026-07-04T09:00:00.000Z', status: 'ok',
    })
    mock.timers.setTime(T0 + 181 * DAY)
    const late = await runCli(['--store', db, 'due'])
    assert.equal(late.code, 1)
    assert.match(late.stdout, /\| METRICS_AUTH_TOKEN \| token \| never \(tracked since 2026-01-05T09:00:00Z\) \| 2026-07-04T09:00:00Z \| overdue \|/)
  })

  it('finalize tells an empty inventory when the file was rotated; rollback does not count as a rotation', async (t) => {
    const dir = tempDir(t)
    const rotatedAt = '2026-01-05T08:00:00.000Z'
    // The app's lifetime is in the file: without it finalize would assume 24 hours.
    const file = envFile(dir, `JWT_SECRET_PREV=${randomBytes(32).toString('hex')}\nJWT_SECRET_ROTATED_AT=${rotatedAt}\nJWT_EXPIRATION=15m\n`)
    freeze(t, T0)
    assert.equal((await runCli(['--env-file', file, ...OPS, 'finalize'])).code, 0)
    let report = JSON.parse((await runCli(['--env-file', file, '--json', 'due', '--all'])).stdout) as DueJson
    assert.deepEqual(report.secrets.map((s) => [s.name, s.lastRotatedAt, s.lastMethod]), [['JWT_SECRET', rotatedAt, 'finalize']])

    mock.timers.setTime(T0 + DAY)
    assert.equal((await runCli(['--env-file', file, ...OPS, 'rotate'])).code, 0)
    mock.timers.setTime(T0 + DAY + 60_000)
    assert.equal((await runCli(['--env-file', file, ...OPS, 'rollback'])).code, 0)
    mock.timers.setTime(T0 + 2 * DAY)
    assert.equal((await runCli(['--env-file', file, ...OPS, 'finalize'])).code, 0)
    report = JSON.parse((await runCli(['--env-file', file, '--json', 'due', '--all'])).stdout) as DueJson
    assert.deepEqual(report.secrets.map((s) => [s.lastRotatedAt, s.lastMethod]), [[new Date(T0 + DAY).toISOString(), 'rotate']],
      'a finalize after a known rotation moves nothing')
  })

  it('record: --kind, --at and --notes; bad names, kinds and dates exit 2', async (t) => {
    const dir = tempDir(t)
    const db = path.join(dir, 'rekey.db')
    freeze(t, T0)
    const r = await runCli(['--store', db, ...OPS, '--json', 'record', 'TWILIO_AUTH_TOKEN', '--kind', 'manual', '--at', '2025-12-01', '--notes', 'console'])
    assert.equal(r.code, 0, r.stderr)
    const out = JSON.parse(r.stdout) as Record<string, unknown>
    assert.deepEqual({ ...out, audit: undefined }, {
      secret: 'TWILIO_AUTH_TOKEN', kind: 'manual', cadenceDays: 180, rotatedAt: '2025-12-01T00:00:00.000Z', dueAt: '2026-05-30T00:00:00.000Z', method: 'manual', audit: undefined,
    })
    assert.deepEqual(out.audit, { seq: 1, store: db })
    for (const argv of [
      ['record', 'bad name'], ['record', 'X', '--kind', 'Big Kind'], ['record', 'X', '--at', 'last tuesday'],
      ['record', 'X', '--at', '2027-01-01'], ['record', 'X', '--method', ' '], ['record'],
    ]) assert.equal((await runCli(['--store', db, ...argv])).code, 2, argv.join(' '))
  })

  it('--within takes a duration with a unit', async (t) => {
    const dir = tempDir(t)
    const db = path.join(dir, 'rekey.db')
    for (const good of ['7d', '2w', '36h', '1y']) assert.equal((await runCli(['--store', db, 'due', '--within', good])).code, 0, good)
    for (const bad of ['7', 'soon', '-1d', '']) {
      const r = await runCli(['--store', db, 'due', '--within', bad])
      assert.equal(r.code, 2, bad)
    }
    const none = await runCli(['--store', db, 'due'])
    assert.match(none.stdout, /^no secret is tracked in .* yet/)
  })

  it('reads the cadence from ./rekey.config.json, as a real process', async (t) => {
    const dir = tempDir(t)
    const env = { REKEY_STORE: '', REKEY_MASTER_KEY: '' }
    writeFileSync(path.join(dir, 'rekey.config.json'), JSON.stringify({ cadence: { SMTP_PASSWORD: '30d', 'kind:jwt': '14d' } }))
    const file = envFile(dir)
    assert.equal((await runBin(['--env-file', file, ...OPS, 'rotate'], { cwd: dir, env })).code, 0)
    const rec = await runBin(['--env-file', file, ...OPS, 'record', 'SMTP_PASSWORD'], { cwd: dir, env })
    assert.equal(rec.code, 0, rec.stderr)
    assert.match(rec.stdout, /\(smtp, every 30 d\)/)
    const report = JSON.parse((await runBin(['--env-file', file, '--json', 'due', '--all'], { cwd: dir, env })).stdout) as DueJson
    assert.deepEqual(report.secrets.map((s) => [s.name, s.cadenceDays]), [['JWT_SECRET', 14], ['SMTP_PASSWORD', 30]])

    writeFileSync(path.join(dir, 'rekey.config.json'), JSON.stringify({ cadence: { SMTP_PASSWORD: 30 } }))
    const bad = await runBin(['--env-file', file, 'due'], { cwd: dir, env })
    assert.equal(bad.code, 2)
    assert.match(bad.stderr, /^rekey: ERR_CONFIG: [\s\S]*rekey.config.json: cadence "SMTP_PASSWORD" must be a duration/)
  })
})
