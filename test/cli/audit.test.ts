import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import { describe, it, mock } from 'node:test'
import { parseEnv } from '../../src/config/env-file.ts'
import { runBin, runCli, tempDir } from './helpers.ts'

const OPS = ['--operator', 'alice']
const HEADER = '| Date | Secret | Operator | Method | Notes | Request |'

/** Every value of the file that looks like a secret, to check no output shows one. */
function secretsIn(file: string): string[] {
  return Object.entries(parseEnv(readFileSync(file, 'utf8'))).filter(([k, v]) => /SECRET|PASSWORD/.test(k) && !/_AT$|DATE$/.test(k) && v.length >= 16).map(([, v]) => v)
}

function envFile(dir: string): string {
  const file = path.join(dir, '.env')
  writeFileSync(file, `# app\nJWT_SECRET=${randomBytes(32).toString('hex')}\nJWT_EXPIRATION=15m\n`)
  return file
}

function dbRows(dir: string, sql: string): Record<string, unknown>[] {
  const db = new DatabaseSync(path.join(dir, '.rekey', 'rekey.db'))
  try {
    return db.prepare(sql).all() as Record<string, unknown>[]
  } finally {
    db.close()
  }
}

function tamper(dir: string, ...statements: string[]): void {
  const db = new DatabaseSync(path.join(dir, '.rekey', 'rekey.db'))
  try {
    for (const sql of statements) db.exec(sql)
  } finally {
    db.close()
  }
}

/** A log of four rows written by env-file operations and a manual record. */
async function seededLog(dir: string): Promise<string> {
  const file = envFile(dir)
  for (const argv of [['rotate'], ['finalize', '--force'], ['record', 'SMTP_PASSWORD'], ['record', 'AWS_SECRET_ACCESS_KEY']]) {
    const r = await runCli(['--env-file', file, ...OPS, ...argv])
    assert.equal(r.code, 0, r.stderr)
  }
  return file
}

describe('audit rows of env-file operations', () => {
  it('gen, rotate, rollback and finalize each write one row in the store beside the file; audit prints them', async (t) => {
    const dir = tempDir(t)
    const file = envFile(dir)
    const start = Date.parse('2026-03-01T10:00:00Z')
    mock.timers.enable({ apis: ['Date'], now: start })
    t.after(() => mock.timers.reset())
    const seen = new Set(secretsIn(file))
    const outputs: string[] = []
    const run = async (argv: string[]): Promise<void> => {
      const r = await runCli(['--env-file', file, ...OPS, ...argv])
      assert.equal(r.code, 0, r.stderr)
      outputs.push(r.stdout, r.stderr)
      for (const s of secretsIn(file)) seen.add(s)
    }

    await run(['gen', '--var', 'SMTP_PASSWORD'])
    mock.timers.setTime(start + 60_000)
    await run(['rotate'])
    mock.timers.setTime(start + 120_000)
    await run(['rollback'])
    mock.timers.setTime(start + 30 * 60_000)
    await run(['finalize'])
    assert.ok(existsSync(path.join(dir, '.rekey', 'rekey.db')), 'the store is beside the file')

    const stored = dbRows(dir, 'SELECT seq, at, secret, operator, method, notes, request_id FROM audit_events ORDER BY seq')
    assert.deepEqual(stored.map((r) => [r.seq, r.secret, r.operator, r.method, r.request_id]), [
      [1, 'SMTP_PASSWORD', 'alice', 'gen', null],
      [2, 'JWT_SECRET', 'alice', 'rotate', null],
      [3, 'JWT_SECRET', 'alice', 'rollback', null],
      [4, 'JWT_SECRET', 'alice', 'finalize', null],
    ])
    assert.deepEqual(stored.map((r) => r.at), [start, start + 60_000, start + 120_000, start + 30 * 60_000])
    assert.match(String(stored[1]?.notes), /^JWT_SECRET signs; JWT_SECRET_PREV verifies until finalize; signing kid [\w-]{16} -> [\w-]{16}, previous kid none -> [\w-]{16}$/)
    assert.match(String(stored[3]?.notes), /^grace window over; signing kid [\w-]{16} -> [\w-]{16}, previous kid [\w-]{16} -> none$/)

    const table = await runCli(['--env-file', file, 'audit'])
    assert.equal(table.code, 0, table.stderr)
    const lines = table.stdout.trimEnd().split('\n')
    assert.equal(lines[0], HEADER)
    assert.equal(lines[1], '| --- | --- | --- | --- | --- | --- |')
    assert.equal(lines.length, 6)
    assert.match(lines[2] ?? '', /^\| 2026-03-01T10:00:00Z \| SMTP_PASSWORD \| alice \| gen \| new 32-byte hex secret; kid none -> [\w-]{16} \| - \|$/)
    assert.match(lines[5] ?? '', /^\| 2026-03-01T10:30:00Z \| JWT_SECRET \| alice \| finalize \| grace window over; .* \| - \|$/)

    const json = await runCli(['--env-file', file, '--json', 'audit', '--since', '2026-03-01T10:01:00Z'])
    const rows = JSON.parse(json.stdout) as Record<string, unknown>[]
    assert.deepEqual(rows.map((r) => r.method), ['rotate', 'rollback', 'finalize'])
    assert.deepEqual(Object.keys(rows[0] ?? {}), ['seq', 'date', 'secret', 'operator', 'method', 'notes', 'request', 'prevHash', 'hash'])
    assert.equal(rows[0]?.date, '2026-03-01T10:01:00.000Z')

    const verify = await runCli(['--env-file', file, 'audit', '--verify'])
    assert.equal(verify.code, 0, verify.stderr)
    assert.match(verify.stdout, /^audit chain intact: 4 rows\nhead: 4:[0-9a-f]{16} /)

    outputs.push(table.stdout, json.stdout, verify.stdout)
    for (const secret of seen) for (const out of outputs) assert.ok(!out.includes(secret), 'no command prints a secret')
  })

  it('fails closed: when the file cannot be rewritten, no row is written and the file is unchanged', async (t) => {
    const dir = tempDir(t)
    const file = envFile(dir)
    const before = readFileSync(file, 'utf8')
    // A directory where the backup must go makes the rewrite fail inside the audit transaction.
    mkdirSync(path.join(dir, '.env.bak.5', 'blocker'), { recursive: true })
    const r = await runCli(['--env-file', file, ...OPS, 'rotate'])
    // A directory in the way is a configuration to change (exit 2), named.
    assert.equal(r.code, 2)
    assert.match(r.stderr, /^rekey: ERR_CONFIG: \S+\.env\.bak\.5 is a directory/m)
    assert.equal(readFileSync(file, 'utf8'), before)
    assert.deepEqual(dbRows(dir, 'SELECT seq FROM audit_events'), [])
    assert.deepEqual(dbRows(dir, 'SELECT name FROM secrets'), [], 'the inventory was rolled back with the row')
  })

  it('fails closed: when the store cannot be opened, the file is unchanged', async (t) => {
    const dir = tempDir(t)
    const file = envFile(dir)
    const before = readFileSync(file, 'utf8')
    writeFileSync(path.join(dir, 'not-a-dir'), '')
    const r = await runCli(['--env-file', file, '--store', path.join(dir, 'not-a-dir', 'rekey.db'), ...OPS, 'rotate'])
    assert.notEqual(r.code, 0)
    assert.equal(readFileSync(file, 'utf8'), before)
    assert.equal(existsSync(`${file}.bak.1`), false)
  })
})

describe('rekey audit --verify on a tampered store', () => {
  const cases: { name: string, sql: string[], seq: number, reason: RegExp }[] = [
    { name: 'a row whose notes were edited', sql: ["UPDATE audit_events SET notes = 'routine' WHERE seq = 2"], seq: 2, reason: /content does not match its hash/ },
    { name: 'a row deleted from the middle', sql: ['DELETE FROM audit_events WHERE seq = 3'], seq: 3, reason: /row 3 is missing/ },
    {
      name: 'two rows whose seq were swapped',
      sql: ['UPDATE audit_events SET seq = -2 WHERE seq = 2', 'UPDATE audit_events SET seq = 2 WHERE seq = 3', 'UPDATE audit_events SET seq = 3 WHERE seq = -2'],
      seq: 2,
      reason: /prev_hash is not the hash of row 1/,
    },
    { name: 'a row whose operator was edited', sql: ["UPDATE audit_events SET operator = 'mallory' WHERE seq = 4"], seq: 4, reason: /content does not match/ },
  ]
  for (const c of cases) {
    it(`exits 1 naming the first bad row: ${c.name}`, async (t) => {
      const dir = tempDir(t)
      const file = await seededLog(dir)
      assert.equal((await runCli(['--env-file', file, 'audit', '--verify'])).code, 0)
      tamper(dir, ...c.sql)
      const r = await runCli(['--env-file', file, 'audit', '--verify'])
      assert.equal(r.code, 1)
      assert.equal(r.stdout, '')
      assert.match(r.stderr, new RegExp(`^rekey: ERR_REFUSED: audit chain broken at row ${c.seq}: `))
      assert.match(r.stderr, c.reason)
      const json = await runCli(['--env-file', file, '--json', 'audit', '--verify'])
      assert.equal(json.code, 1)
      const report = JSON.parse(json.stdout) as { ok: boolean, firstBad: { seq: number } }
      assert.equal(report.ok, false)
      assert.equal(report.firstBad.seq, c.seq)
    })
  }

  it('detects rows cut from the end against a head recorded earlier, as a real process', async (t) => {
    const dir = tempDir(t)
    const file = await seededLog(dir)
    const first = await runBin(['--env-file', file, 'audit', '--verify'], { cwd: dir })
    assert.equal(first.code, 0, first.stderr)
    const head = /head: (\d+:[0-9a-f]+)/.exec(first.stdout)?.[1] as string
    assert.equal(head.split(':')[0], '4')
    tamper(dir, 'DELETE FROM audit_events WHERE seq = 4')
    const plain = await runBin(['--env-file', file, 'audit', '--verify'], { cwd: dir })
    assert.equal(plain.code, 0, 'without an anchor a shorter chain is still a valid chain')
    const anchored = await runBin(['--env-file', file, 'audit', '--verify', '--head', head], { cwd: dir })
    assert.equal(anchored.code, 1)
    assert.match(anchored.stderr, /audit chain broken at row 4: .*cut from the end/)
  })

  it('refuses to verify without the master key instead of generating a new one (exit 2)', async (t) => {
    const dir = tempDir(t)
    const file = await seededLog(dir)
    const key = path.join(dir, '.rekey', 'master.key')
    const saved = readFileSync(key, 'utf8').trim()
    rmSync(key)
    const r = await runCli(['--env-file', file, 'audit', '--verify'])
    assert.equal(r.code, 2)
    assert.match(r.stderr, /ERR_CONFIG: no master key/)
    assert.equal(existsSync(key), false)
    // Under REKEY_MASTER_KEY (the same key) it verifies again.
    assert.equal((await runCli(['--env-file', file, 'audit', '--verify'], { REKEY_MASTER_KEY: saved })).code, 0)
  })
})

describe('rekey audit output and options', () => {
  it('masks a secret pasted into --notes, in the stored row and in every output', async (t) => {
    const dir = tempDir(t)
    const file = envFile(dir)
    const jwt = ['eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9', 'eyJzdWIiOiJib2IiLCJpYXQiOjE3MDAwMDAwMDB9', 'aGVsbG8td29ybGQtc2lnbmF0dXJl'].join('.')
    const live = secretsIn(file)[0] as string
    const notes = `rotated after offboarding Bob, ticket OPS-1234; old password=Tr0ub4dor&3 token ${jwt} and JWT ${live}`
    const r = await runCli(['--env-file', file, ...OPS, 'record', 'SMTP_PASSWORD', '--notes', notes])
    assert.equal(r.code, 0, r.stderr)
    const stored = String(dbRows(dir, 'SELECT notes FROM audit_events')[0]?.notes)
    assert.equal(stored, `rotated after offboarding Bob, ticket OPS-1234; old password=Tr…[masked] token eyJh…[masked] and JWT ${live.slice(0, 4)}…[masked]`)
    assert.equal(String(dbRows(dir, 'SELECT notes FROM secrets')[0]?.notes), stored, 'the inventory keeps the masked notes too')
    const table = await runCli(['--env-file', file, 'audit'])
    const json = await runCli(['--env-file', file, '--json', 'audit'])
    for (const out of [r.stdout, table.stdout, json.stdout]) {
      for (const secret of ['Tr0ub4dor&3', jwt, live]) assert.ok(!out.includes(secret))
    }
    assert.ok(table.stdout.includes('ticket OPS-1234'))
  })

  it('escapes pipes in cells, prints - for no request id, and says when the log is empty', async (t) => {
    const dir = tempDir(t)
    const file = envFile(dir)
    const empty = await runCli(['--env-file', file, 'audit'])
    assert.equal(empty.code, 0)
    assert.match(empty.stdout, /^no audit rows in /)
    assert.equal(existsSync(path.join(dir, '.rekey')), false, 'reading the log creates no store')
    assert.deepEqual(JSON.parse((await runCli(['--env-file', file, '--json', 'audit'])).stdout), [])
    assert.match((await runCli(['--env-file', file, 'audit', '--verify'])).stdout, /^audit chain intact: 0 rows\n$/)
    await runCli(['--env-file', file, ...OPS, 'record', 'TWILIO_AUTH_TOKEN', '--notes', 'a | b'])
    const table = await runCli(['--env-file', file, 'audit'])
    assert.match(table.stdout, /\| a \\\| b \| - \|\n$/)
  })

  it('uses --store, then REKEY_STORE, over the store beside the file', async (t) => {
    const dir = tempDir(t)
    const other = path.join(dir, 'elsewhere', 'audit.db')
    const file = envFile(dir)
    assert.equal((await runCli(['--env-file', file, '--store', other, ...OPS, 'rotate'])).code, 0)
    assert.equal(existsSync(path.join(dir, '.rekey')), false)
    const viaEnv = await runCli(['--env-file', file, 'audit'], { REKEY_STORE: other })
    assert.match(viaEnv.stdout, /\| JWT_SECRET \| alice \| rotate \|/)
  })

  it('rejects a bad --since date and --head without --verify (exit 2)', async (t) => {
    const dir = tempDir(t)
    const file = envFile(dir)
    for (const bad of ['yesterday', '2026-13-01', '01/03/2026', '']) {
      const r = await runCli(['--env-file', file, 'audit', '--since', bad])
      assert.equal(r.code, 2, bad)
    }
    assert.equal((await runCli(['--env-file', file, 'audit', '--since', '2026-03-01'])).code, 0)
    assert.equal((await runCli(['--env-file', file, 'audit', '--head', '4:0123456789abcdef'])).code, 2)
  })
})
