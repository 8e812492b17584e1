/**
 * The Dockerfile and Compose file. No docker engine runs here, so the Dockerfile is parsed
 * and its commands are checked against this checkout: each `npm` command is a real npm
 * command whose scripts and lock file exist, each COPY source exists, and the CMD, run as a
 * script from the repository, starts `rekey serve` (its --help answers).
 */
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import path from 'node:path'
import { describe, test } from 'node:test'
import { parse } from 'yaml'

const ROOT = path.resolve(import.meta.dirname, '../..')
const DOCKERFILE = path.join(ROOT, 'examples/docker/Dockerfile')
const COMPOSE = path.join(ROOT, 'examples/docker/compose.yaml')

interface Instruction { readonly op: string, readonly args: string, readonly stage: number }

/** Instructions with line continuations joined and comments dropped. */
function parseDockerfile(text: string): Instruction[] {
  const out: Instruction[] = []
  let stage = -1
  let pending = ''
  for (const raw of text.split('\n')) {
    if (/^\s*#/.test(raw) && pending === '') continue
    pending += raw.replace(/\\\s*$/, ' ')
    if (/\\\s*$/.test(raw)) continue
    const line = pending.trim()
    pending = ''
    if (line === '') continue
    const match = /^([A-Z]+)\s+(.*)$/.exec(line)
    assert.ok(match !== null, `not an instruction: ${line}`)
    if (match[1] === 'FROM') stage++
    out.push({ op: match[1] as string, args: (match[2] as string).trim(), stage })
  }
  return out
}

function run(cmd: string, args: string[], cwd: string): Promise<{ code: number, stdout: string, stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { cwd, timeout: 30_000, env: { ...process.env, PATH: `${path.dirname(process.execPath)}:${process.env.PATH ?? ''}` } }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : Number((err as { code?: unknown }).code ?? 1), stdout, stderr })
    })
  })
}

describe('examples/docker/Dockerfile', () => {
  const instructions = parseDockerfile(readFileSync(DOCKERFILE, 'utf8'))
  const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }

  test('two stages on Node 24; the runtime stage runs as the unprivileged node user', () => {
    const froms = instructions.filter((i) => i.op === 'FROM').map((i) => i.args)
    assert.deepEqual(froms, ['node:24-bookworm-slim AS build', 'node:24-bookworm-slim'])
    assert.ok(instructions.some((i) => i.op === 'USER' && i.args === 'node' && i.stage === 1))
    assert.ok(!instructions.some((i) => i.op === 'ENV' && /SECRET|MASTER_KEY|PASSWORD/.test(i.args)), 'no secret baked in')
  })

  test('every RUN npm command is a real npm command, with its script and lock file present', async () => {
    const npmCommands = instructions.filter((i) => i.op === 'RUN').flatMap((i) => i.args.split('&&').map((c) => c.trim()))
    assert.ok(npmCommands.length >= 3)
    for (const command of npmCommands) {
      const [tool, sub, ...rest] = command.split(/\s+/)
      assert.equal(tool, 'npm', command)
      const help = await run('npm', [sub as string, '--help'], ROOT)
      assert.equal(help.code, 0, `npm ${sub ?? ''} is not an npm command`)
      if (sub === 'run') assert.ok(pkg.scripts[rest[0] as string] !== undefined, `no script ${rest[0] ?? ''}`)
      if (sub === 'ci') assert.ok(existsSync(path.join(ROOT, 'package-lock.json')), 'npm ci needs package-lock.json')
      for (const flag of rest.filter((r) => r.startsWith('--'))) assert.match(flag, /^--(ignore-scripts|no-audit|no-fund|omit=dev)$/)
    }
    assert.equal(pkg.scripts.build?.includes('tsconfig.build.json'), true)
  })

  test('every COPY source of the build stage exists in the repository', () => {
    for (const copy of instructions.filter((i) => i.op === 'COPY' && !i.args.includes('--from'))) {
      const parts = copy.args.split(/\s+/).filter((p) => !p.startsWith('--'))
      for (const source of parts.slice(0, -1)) assert.ok(existsSync(path.join(ROOT, source)), `COPY ${source}: missing`)
    }
  })

  test('the CMD runs `rekey serve` (exec form), and that command works from a checkout', async () => {
    const cmd = instructions.filter((i) => i.op === 'CMD').at(-1)
    const argv = JSON.parse(cmd?.args ?? '[]') as string[]
    assert.deepEqual(argv, ['node', 'bin/rekey.js', 'serve'])
    // Run as a script: the same argv with --help, from the repository (bin/ picks src/ or dist/).
    const result = await run(process.execPath, [...argv.slice(1), '--help'], ROOT)
    assert.equal(result.code, 0, result.stderr)
    assert.match(result.stdout, /Usage: rekey serve/)
  })

  test('the HEALTHCHECK asks /api/health/ready', () => {
    const health = instructions.find((i) => i.op === 'HEALTHCHECK')
    assert.match(health?.args ?? '', /\/api\/health\/ready/)
  })
})

describe('examples/docker/compose.yaml', () => {
  const compose = parse(readFileSync(COMPOSE, 'utf8')) as { services: Record<string, Record<string, unknown>>, volumes: Record<string, unknown> }

  test('parses with an app and a PostgreSQL service', () => {
    assert.deepEqual(Object.keys(compose.services).sort(), ['postgres', 'rekey'])
    assert.match(String(compose.services.postgres?.image), /^postgres:\d+/)
    assert.ok('pgdata' in compose.volumes)
  })

  test('the app waits for a healthy PostgreSQL and uses it as its store', () => {
    const app = compose.services.rekey as { depends_on: Record<string, { condition: string }>, environment: Record<string, string>, build: { dockerfile: string } }
    assert.equal(app.depends_on.postgres?.condition, 'service_healthy')
    assert.match(app.environment.REKEY_STORE ?? '', /^postgres:\/\/rekey:\$\{POSTGRES_PASSWORD:\?[^}]+\}@postgres:5432\/rekey$/)
    assert.equal(app.build.dockerfile, 'examples/docker/Dockerfile')
    const pgHealth = compose.services.postgres?.healthcheck as { test: string[] }
    assert.match(pgHealth.test.join(' '), /pg_isready/)
  })

  test('no secret is written in the file: passwords come from interpolation, the master key from rekey.env', () => {
    const text = readFileSync(COMPOSE, 'utf8')
    assert.doesNotMatch(text, /REKEY_MASTER_KEY\s*:/)
    const pgEnv = compose.services.postgres?.environment as Record<string, string>
    assert.match(pgEnv.POSTGRES_PASSWORD ?? '', /^\$\{POSTGRES_PASSWORD:\?/)
    assert.deepEqual(compose.services.rekey?.env_file, ['rekey.env'])
  })
})
