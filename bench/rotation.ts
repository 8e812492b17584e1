/**
 * Rotation benchmark: three `rekey serve` processes on one PostgreSQL schema under continuous
 * authenticated traffic (login, /me, refresh, round-robin), two `rekey rotate` runs at 15% and
 * 45% of the run, a `rekey finalize` between them (refused), then `rekey emergency`.
 * Prints a markdown table: requests, failures (must be 0), req/s, how long each rotation took
 * from the CLI's start until every instance signed with the new kid, and how long the
 * emergency took until every instance refused a token issued before it.
 *
 *   npm run bench:rotation                        # 30 s, 3 instances, 20 concurrent workers
 *   DURATION=120 CONCURRENCY=40 INSTANCES=5 npm run bench:rotation
 *
 * Needs REKEY_BENCH_POSTGRES_URL or REKEY_TEST_POSTGRES_URL (with a user name in it).
 * Exits 1 when any request failed or a step did not do what it must.
 */
import os from 'node:os'
import { runRotationScenario } from '../test/multi-instance/scenario.ts'

const PG_URL = process.env.REKEY_BENCH_POSTGRES_URL ?? process.env.REKEY_TEST_POSTGRES_URL ?? ''
const DURATION = Number(process.env.DURATION ?? 30)
const CONCURRENCY = Number(process.env.CONCURRENCY ?? 20)
const INSTANCES = Number(process.env.INSTANCES ?? 3)

if (PG_URL === '') {
  process.stderr.write('bench:rotation needs PostgreSQL: set REKEY_BENCH_POSTGRES_URL (or REKEY_TEST_POSTGRES_URL), e.g. postgres://postgres@127.0.0.1:5432/test\n')
  process.exit(2)
}
if (![DURATION, CONCURRENCY, INSTANCES].every((n) => Number.isInteger(n) && n > 0)) {
  process.stderr.write('DURATION (seconds), CONCURRENCY and INSTANCES must be positive integers\n')
  process.exit(2)
}

const result = await runRotationScenario({
  postgresUrl: PG_URL,
  durationMs: DURATION * 1000,
  instances: INSTANCES,
  concurrency: CONCURRENCY,
  progress: (line) => process.stderr.write(`  ${line}\n`),
})

const { load, rotations, emergency } = result
const ms = (n: number): string => (Number.isFinite(n) ? `${Math.round(n)} ms` : 'never')
const rows: Array<[string, string]> = [
  ['instances × workers', `${result.instances} × ${result.concurrency}`],
  ['duration', `${(load.elapsedMs / 1000).toFixed(1)} s`],
  ['requests', String(load.requests)],
  ['failures', String(load.failures)],
  ['req/s', (load.requests / (load.elapsedMs / 1000)).toFixed(0)],
  ...rotations.flatMap((r, i): Array<[string, string]> => [
    [`rotate ${i + 1}: CLI start → every instance signing`, `${ms(r.propagationMs)} (CLI exit ${r.code} after ${ms(r.cliMs)})`],
    [`rotate ${i + 1}: staged → every instance signing`, `${ms(r.fromStageMs)} (waited for acks ${ms(r.waitedMs)})`],
  ]),
  ['finalize between rotations', result.finalizeBetween.code === 1 ? 'refused (exit 1, ERR_UNSAFE)' : `exit ${result.finalizeBetween.code}`],
  ['emergency: CLI start → refused everywhere', `${ms(emergency.refusedEverywhereMs)} (CLI exit ${emergency.code} after ${ms(emergency.cliMs)})`],
  ['emergency: commit → refused everywhere', ms(emergency.fromCommitMs)],
]
const width = Math.max(...rows.map(([k]) => k.length))
process.stdout.write(`\n${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, Node ${process.version}, ${os.platform()}\n\n`)
process.stdout.write(`| ${'measure'.padEnd(width)} | result |\n| ${'-'.repeat(width)} | --- |\n`)
for (const [k, v] of rows) process.stdout.write(`| ${k.padEnd(width)} | ${v} |\n`)
for (const f of load.failureSamples) process.stdout.write(`failure: ${f}\n`)

const ok = load.failures === 0 && rotations.every((r) => r.code === 0 && r.oldKidAfterReturn === 0) && result.finalizeBetween.code === 1 && emergency.code === 0
process.exitCode = ok ? 0 : 1
