/**
 * The GitHub Actions workflows users copy from examples/github-workflows/: each parses, has
 * the triggers and schedule it promises, and runs the rekey command it is for.
 */
import assert from 'node:assert/strict'
import { readdirSync, readFileSync } from 'node:fs'
import path from 'node:path'
import { describe, test } from 'node:test'
import { parse } from 'yaml'

const DIR = path.resolve(import.meta.dirname, '../../examples/github-workflows')

interface Step { uses?: string, run?: string, with?: Record<string, unknown>, if?: string, env?: Record<string, string> }
interface Workflow { name: string, on: Record<string, unknown>, permissions: Record<string, string>, jobs: Record<string, { 'runs-on': string, steps: Step[] }> }

function load(file: string): Workflow {
  return parse(readFileSync(path.join(DIR, file), 'utf8')) as Workflow
}

const runs = (wf: Workflow): string => Object.values(wf.jobs).flatMap((j) => j.steps.map((s) => s.run ?? '')).join('\n')
const uses = (wf: Workflow): string[] => Object.values(wf.jobs).flatMap((j) => j.steps.map((s) => s.uses ?? '')).filter((u) => u !== '')

describe('examples/github-workflows', () => {
  test('every file is a workflow that parses, with jobs, steps and least-privilege permissions', () => {
    const files = readdirSync(DIR).filter((f) => /\.ya?ml$/.test(f)).sort()
    assert.deepEqual(files, ['nightly-backup.yml', 'secret-scan.yml', 'weekly-due.yml'])
    for (const file of files) {
      const wf = load(file)
      assert.equal(typeof wf.name, 'string', file)
      assert.equal(wf.permissions.contents, 'read', file)
      for (const job of Object.values(wf.jobs)) {
        assert.equal(job['runs-on'], 'ubuntu-latest')
        assert.ok(job.steps.length > 0)
        for (const step of job.steps) assert.ok(step.uses !== undefined || step.run !== undefined, `${file}: a step with neither uses nor run`)
      }
      for (const action of uses(wf)) assert.match(action, /^[\w-]+\/[\w/-]+@v\d+$/, `${file}: ${action} is pinned to a major version`)
    }
  })

  test('secret-scan: on every push, scans the history as SARIF and uploads it to code scanning', () => {
    const wf = load('secret-scan.yml')
    assert.ok('push' in wf.on)
    assert.equal(wf.on.push, null, 'every branch and tag')
    assert.equal(wf.permissions['security-events'], 'write')
    assert.match(runs(wf), /npx rekey scan --history --format sarif > rekey\.sarif/)
    const upload = Object.values(wf.jobs)[0]?.steps.find((s) => s.uses?.startsWith('github/codeql-action/upload-sarif@') === true)
    assert.equal(upload?.with?.sarif_file, 'rekey.sarif')
    assert.equal(upload?.if, 'always()', 'uploads even when findings fail the scan')
    const checkout = Object.values(wf.jobs)[0]?.steps.find((s) => s.uses?.startsWith('actions/checkout@') === true)
    assert.equal(checkout?.with?.['fetch-depth'], 0, 'the full history, for --history')
  })

  test('nightly-backup: at 02:17 UTC, backup then a restore drill, S3 upload only when configured', () => {
    const wf = load('nightly-backup.yml')
    assert.deepEqual(wf.on.schedule, [{ cron: '17 2 * * *' }])
    assert.ok('workflow_dispatch' in wf.on)
    const script = runs(wf)
    assert.match(script, /npx rekey backup --out backups --s3 "\$BACKUP_S3_URL"/)
    assert.match(script, /if \[ -n "\$BACKUP_S3_URL" \]/)
    assert.match(script, /npx rekey backup verify backups\/rekey-backup-\*\.tgz\.age/)
    // The drill creates a database: with a read-only REKEY_STORE it would fail every night.
    const drill = Object.values(wf.jobs)[0]?.steps.find((s) => s.run?.includes('backup verify') === true)
    assert.equal(drill?.env?.REKEY_STORE, '${{ secrets.REKEY_DRILL_STORE || secrets.REKEY_STORE }}')
    // The archive's MAC is keyed from the master key: the job has it as a secret, never inline.
    assert.match(readFileSync(path.join(DIR, 'nightly-backup.yml'), 'utf8'), /REKEY_MASTER_KEY: \$\{\{ secrets\.REKEY_MASTER_KEY \}\}/)
  })

  test('weekly-due: once a week, rekey due (exit 1 when a secret is overdue)', () => {
    const wf = load('weekly-due.yml')
    const schedule = wf.on.schedule as Array<{ cron: string }>
    assert.equal(schedule.length, 1)
    const fields = schedule[0]?.cron.split(' ') ?? []
    assert.equal(fields.length, 5)
    assert.match(fields[4] ?? '', /^[0-6]$/, 'one day of the week')
    assert.match(runs(wf), /npx rekey due/)
  })
})
