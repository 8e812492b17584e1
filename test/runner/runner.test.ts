/** `npm test` uses the local PostgreSQL when it answers, and sums up what it skipped and why. */
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import path from 'node:path'
import { test } from 'node:test'
import pg from 'pg'
import { DEFAULT_POSTGRES_URL } from './run.ts'

const ROOT = path.resolve(import.meta.dirname, '../..')
const FIXTURE = 'test/runner/fixtures/skips.fixture.ts'

function runner(env: Record<string, string | undefined>): Promise<{ code: number, stdout: string }> {
  const clean = { ...process.env }
  delete clean.REKEY_TEST_POSTGRES_URL
  delete clean.NODE_TEST_CONTEXT
  return new Promise((resolve) => {
    execFile(process.execPath, ['test/runner/run.ts', FIXTURE], { cwd: ROOT, env: { ...clean, ...env } as NodeJS.ProcessEnv, timeout: 60_000 }, (err, stdout) => {
      resolve({ code: err === null ? 0 : Number((err as { code?: unknown }).code ?? 1), stdout })
    })
  })
}

async function defaultAnswers(): Promise<boolean> {
  const client = new pg.Client({ connectionString: DEFAULT_POSTGRES_URL, connectionTimeoutMillis: 3000 })
  try {
    await client.connect()
    return true
  } catch {
    return false
  } finally {
    await client.end().catch(() => {})
  }
}

test('without REKEY_TEST_POSTGRES_URL, the server at the default local URL is used when it answers', async () => {
  const r = await runner({})
  assert.equal(r.code, 0, r.stdout)
  if (await defaultAnswers()) {
    assert.match(r.stdout, new RegExp(`PostgreSQL: using ${DEFAULT_POSTGRES_URL.replaceAll('/', '\\/')}`))
    assert.match(r.stdout, new RegExp(`fixture saw REKEY_TEST_POSTGRES_URL=${DEFAULT_POSTGRES_URL.replaceAll('/', '\\/')}`))
    assert.doesNotMatch(r.stdout, /fixture PostgreSQL suite skipped/)
  } else {
    assert.match(r.stdout, /PostgreSQL: nothing answers at .*; its suites are skipped/)
    assert.match(r.stdout, /- REKEY_TEST_POSTGRES_URL is not set; fixture PostgreSQL suite skipped/)
  }
})

test('the summary lists every skipped suite under its reason', async () => {
  const r = await runner({ REKEY_TEST_POSTGRES_URL: '' })
  assert.equal(r.code, 0, r.stdout)
  assert.match(r.stdout, /PostgreSQL: REKEY_TEST_POSTGRES_URL is set empty; its suites are skipped/)
  const summary = r.stdout.slice(r.stdout.indexOf('\nskipped: '))
  assert.match(summary, /^\nskipped: 2 \(tests and suites\), by reason/)
  assert.match(summary, /- REKEY_TEST_POSTGRES_URL is not set; fixture PostgreSQL suite skipped\n\s+test\/runner\/fixtures\/skips\.fixture\.ts \(1\)/)
  assert.match(summary, /- no unicorn in this sandbox\n\s+test\/runner\/fixtures\/skips\.fixture\.ts \(1\)/)
})
