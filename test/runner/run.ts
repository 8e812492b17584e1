/**
 * `npm test`: the whole suite with the pinned Node, using the local PostgreSQL and Redis
 * when they answer at their default addresses, and saying so; suites that cannot run are
 * skipped with their reason, and the reasons are summed up at the end.
 *
 * REKEY_TEST_POSTGRES_URL / REKEY_TEST_REDIS_URL name other servers; set one to the empty
 * string to leave that server out. Arguments, if any, are the test files to run.
 */
import { spawn } from 'node:child_process'
import { connect } from 'node:net'
import path from 'node:path'

const ROOT = path.resolve(import.meta.dirname, '../..')
export const DEFAULT_POSTGRES_URL = 'postgres://postgres@127.0.0.1:5432/test'
export const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379'

/** Resolves to null when PostgreSQL answers `SELECT 1` at `url`, else to the reason it did not. */
async function postgresProblem(url: string): Promise<string | null> {
  const { default: pg } = await import('pg')
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3000 })
  try {
    await client.connect()
    await client.query('SELECT 1')
    return null
  } catch (err) {
    return (err as { code?: string }).code ?? (err as Error).message
  } finally {
    await client.end().catch(() => {})
  }
}

/** Resolves to null when Redis answers PING at `url`, else to the reason it did not. */
function redisProblem(url: string): Promise<string | null> {
  const { hostname, port } = new URL(url)
  return new Promise((resolve) => {
    const socket = connect({ host: hostname, port: Number(port || 6379) })
    const done = (problem: string | null): void => { socket.destroy(); resolve(problem) }
    socket.setTimeout(3000, () => done('no answer in 3 s'))
    socket.once('error', (err: NodeJS.ErrnoException) => done(err.code ?? err.message))
    socket.once('connect', () => socket.write('PING\r\n'))
    socket.once('data', (chunk) => done(chunk.toString().startsWith('+PONG') ? null : 'not a Redis server'))
  })
}

async function server(name: string, variable: string, fallback: string, problemOf: (url: string) => Promise<string | null>): Promise<string> {
  const given = process.env[variable]
  if (given === '') return `${name}: ${variable} is set empty; its suites are skipped`
  const url = given ?? fallback
  const problem = await problemOf(url)
  const shown = url.replace(/\/\/([^:@/]+):[^@/]*@/, '//$1:***@')
  if (problem === null) {
    process.env[variable] = url
    return `${name}: using ${shown}${given === undefined ? ` (the default; set ${variable} for another)` : ''}`
  }
  if (given === undefined) {
    return `${name}: nothing answers at ${shown} (${problem}); its suites are skipped (start it, or set ${variable})`
  }
  // Named on purpose and not answering: the suites run and fail, which is the point.
  return `${name}: ${variable} does not answer (${problem}); its suites will fail`
}

// Imported by runner.test.ts for its constants: run only as the script.
if (import.meta.main) {
  const notes = [
    await server('PostgreSQL', 'REKEY_TEST_POSTGRES_URL', DEFAULT_POSTGRES_URL, postgresProblem),
    await server('Redis', 'REKEY_TEST_REDIS_URL', DEFAULT_REDIS_URL, redisProblem),
  ]
  for (const note of notes) process.stdout.write(`${note}\n`)

  const files = process.argv.slice(2)
  const child = spawn(process.execPath, [
    '--test', `--test-concurrency=${process.env.REKEY_TEST_CONCURRENCY ?? '2'}`,
    '--test-reporter=spec', '--test-reporter-destination=stdout',
    `--test-reporter=${path.join(ROOT, 'test/runner/skip-summary.ts')}`, '--test-reporter-destination=stdout',
    ...(files.length > 0 ? files : ['test/**/*.test.ts']),
  ], { cwd: ROOT, stdio: 'inherit', env: process.env })
  const code = await new Promise<number>((resolve) => child.on('exit', (c, signal) => resolve(c ?? (signal === null ? 1 : 128))))
  for (const note of notes) process.stdout.write(`${note}\n`)
  process.exitCode = code
}
