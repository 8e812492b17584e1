/**
 * Item 8 of issue 15: every command of docs/leak-response.md runs, in order, as the doc writes
 * it (the `sh` blocks are extracted, so the doc cannot drift), on a repository that committed
 * its .env: a managed store with a registered user, an env file, a bare remote, and a throwaway
 * PostgreSQL database whose leaked application user `rekey rotate-db` replaces. Each command's
 * own output is checked, then what the runbook promises: the leak gone from the remote, the
 * leaked JWT secret and database user dead, the user's session ended and a new password due.
 */
import assert from 'node:assert/strict'
import { execFileSync, spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { test } from 'node:test'
import { parseEnv } from 'node:util'
import { startServer } from '../../src/http/server.ts'
import { Keyring } from '../../src/index.ts'
import { runbookCommands, runbookScript, outputOf, type CommandOutput } from './support/runbook.ts'
import { throwawayDatabase, loginAs, POSTGRES_SKIP } from './support/throwaway-database.ts'

const ROOT = path.resolve(import.meta.dirname, '../..')
const DOC = readFileSync(path.join(ROOT, 'docs/leak-response.md'), 'utf8')
const BIN = path.join(ROOT, 'bin/rekey.js')
const EMAIL = 'user@example.test'
const PASSWORD = 'user-password-0123456789'

function filterRepoSkip(): string | false {
  if (spawnSync('git', ['filter-repo', '--version']).status === 0) return false
  // .ci/run installs it: in CI a missing filter-repo is a failure, not a skip.
  if (process.env.CI === 'true') return false
  return 'git filter-repo is not installed (Debian: git-filter-repo); .ci/run installs it'
}

const skip = filterRepoSkip() || POSTGRES_SKIP

/** Starts the managed service on the store, runs `fn` with its URL, stops it. */
async function withService<T>(repo: string, fn: (url: string) => Promise<T>): Promise<T> {
  const server = await startServer({ env: { REKEY_STORE: path.join(repo, '.rekey/rekey.db'), REKEY_SCHEDULER: 'off' }, cwd: repo, flags: { port: 0, host: '127.0.0.1' }, logDestination: { write: () => true } as never })
  try {
    return await fn(server.url)
  } finally {
    await server.close()
  }
}

async function post(url: string, body: unknown): Promise<{ status: number, body: Record<string, unknown> }> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
  return { status: res.status, body: await res.json().catch(() => ({})) as Record<string, unknown> }
}

test('docs/leak-response.md: every command runs and does what the runbook says', { skip, timeout: 240_000 }, async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'rekey-leak-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  const db = await throwawayDatabase()
  t.after(() => db.drop())
  const repo = path.join(dir, 'app')
  const remote = path.join(dir, 'remote.git')
  mkdirSync(repo)
  const git = (cwd: string, ...args: string[]): string => execFileSync('git', ['-c', 'user.name=dev', '-c', 'user.email=dev@example.com', ...args], { cwd, encoding: 'utf8' })
  git(dir, 'init', '-q', '--bare', remote)
  git(repo, 'init', '-q', '-b', 'main')
  // The leak: a committed .env with the JWT secret and the dependents, the database URL included.
  const leaked = 'a3f9c2e71b8d4f6a0c5e9b2d7f1a8c3e6b0d4f9a2c7e1b5d8f3a6c0e9b4d2f7a'
  const smtp = 'smtp-password-0123456789abcdef'
  const aws = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY'
  writeFileSync(path.join(repo, '.env'), `JWT_SECRET=${leaked}\nDATABASE_URL=${db.appUrl}\nSMTP_PASSWORD=${smtp}\nAWS_SECRET_ACCESS_KEY=${aws}\n`)
  writeFileSync(path.join(repo, 'config.js'), `export const smtp = { host: 'smtp.example.com', password: '${smtp}' }\n`)
  git(repo, 'add', '.env', 'config.js')
  git(repo, 'commit', '-qm', 'initial, with the .env')
  git(repo, 'remote', 'add', 'origin', remote)
  git(repo, 'push', '-q', 'origin', 'main')
  // Not part of the app: the CLI, and the managed store, where a user has signed in.
  writeFileSync(path.join(repo, '.git/info/exclude'), 'node_modules/\n.rekey/\n')
  mkdirSync(path.join(repo, 'node_modules/.bin'), { recursive: true })
  symlinkSync(BIN, path.join(repo, 'node_modules/.bin/rekey'))
  const refreshToken = await withService(repo, async (url) => {
    assert.equal((await post(`${url}/api/auth/register`, { email: EMAIL, password: PASSWORD })).status, 201)
    const login = await post(`${url}/api/auth/login`, { email: EMAIL, password: PASSWORD })
    assert.equal(login.status, 200)
    return login.body.refreshToken as string
  })
  // The app is logged in with the leaked user before the rotation (and restarted before finalize).
  assert.deepEqual(await loginAs(db.appUrl), { user: db.appUser, orders: 2 })

  // The list of leaked values for --replace-text, written beside the repository as the doc says.
  writeFileSync(path.join(dir, 'leaked-values.txt'), `${smtp}==>***REMOVED***\n`, { mode: 0o600 })
  const commands = runbookCommands(DOC)
  assert.ok(commands.length >= 14, `the runbook's commands (${commands.length})`)
  writeFileSync(path.join(dir, 'runbook.sh'), runbookScript(commands))
  const env: Record<string, string | undefined> = {
    ...process.env,
    PATH: `${path.dirname(process.execPath)}:${process.env.PATH ?? ''}`,
    REMOTE: remote, REKEY_DB_ADMIN_URL: db.adminUrl, npm_config_cache: path.join(dir, '.npm'),
    GIT_AUTHOR_NAME: 'dev', GIT_AUTHOR_EMAIL: 'dev@example.com', GIT_COMMITTER_NAME: 'dev', GIT_COMMITTER_EMAIL: 'dev@example.com',
  }
  for (const name of ['REKEY_STORE', 'REKEY_ENV_FILE', 'REKEY_OPERATOR']) delete env[name]
  const run = spawnSync('bash', [path.join(dir, 'runbook.sh')], { cwd: repo, env, encoding: 'utf8', timeout: 180_000 })
  assert.equal(run.status, 0, `a runbook command failed:\n${run.stdout}\n${run.stderr}`)
  const out = (prefix: string, nth = 0): CommandOutput => outputOf(run.stdout, commands, prefix, nth)

  const envNow = parseEnv(readFileSync(path.join(repo, '.env'), 'utf8'))
  const newDbPassword = decodeURIComponent(new URL(envNow.DATABASE_URL ?? '').password)
  for (const secret of [leaked, db.appPassword, smtp, aws, newDbPassword]) {
    assert.ok(!run.stdout.includes(secret) && !run.stderr.includes(secret), 'no secret, leaked or new, is ever printed')
  }
  // 1. The history scan found the committed .env and the secrets in it (exit 1, not a usage error).
  const scan = out('npx rekey scan')
  assert.match(scan.text, /scan: exit 1$/m, scan.text)
  assert.match(scan.text, /^\.env:1 @ [0-9a-f]{12} +rekey\/tracked-env-file/m)
  assert.match(scan.text, /found PostgreSQL connection string/)
  // 2. Managed: the emergency ran on the store. Env file: the leaked secret is gone, with no _PREV.
  const managed = out('npx rekey emergency').text
  assert.match(managed, /^revoked: (access|refresh) key \S+, (access|refresh) key \S+$/m)
  assert.match(managed, /^sessions ended: 1; tokens issued before \S+ are refused$/m)
  const envEmergency = out('npx rekey --env .env emergency')
  assert.match(envEmergency.text, /JWT_SECRET/)
  assert.equal(envNow.JWT_SECRET?.length, 64)
  assert.notEqual(envNow.JWT_SECRET, leaked)
  assert.equal(envNow.JWT_SECRET_PREV, undefined)
  // What the app sees once restarted on the file: a token the attacker signs with the leaked key is refused.
  const forged = Keyring.fromEnv({ JWT_SECRET: leaked }).sign({ sub: 'attacker' })
  assert.throws(() => Keyring.fromEnv(envNow).verify(forged), { code: 'ERR_KEY_UNKNOWN' })
  // --shred-backups: no backup generation beside the file still holds the leaked value.
  for (const name of readdirSync(repo).filter((f) => f.startsWith('.env.bak'))) assert.ok(!readFileSync(path.join(repo, name), 'utf8').includes(leaked), name)
  // 3. Neither the local history nor the remote holds the file any more; the second scan is clean.
  assert.equal(git(repo, 'log', '--all', '--format=%H', '--', '.env').trim(), '')
  assert.equal(git(remote, 'log', '--all', '--format=%H', '--', '.env').trim(), '')
  const published = git(remote, 'log', '--all', '-p')
  for (const secret of [leaked, smtp, db.appPassword]) assert.ok(!published.includes(secret), 'no leaked value in the remote')
  // The file that stays is in every commit, the pasted value replaced; the list of values is gone.
  assert.equal(git(remote, 'show', 'main:config.js'), "export const smtp = { host: 'smtp.example.com', password: '***REMOVED***' }\n")
  assert.ok(!existsSync(path.join(dir, 'leaked-values.txt')))
  assert.match(readFileSync(path.join(repo, '.gitignore'), 'utf8'), /^\.env$/m)
  // 4. rotate-db: the app now logs in as the other user, the leaked one cannot log in at all.
  const nextUser = `${db.appUser}_blue`
  assert.match(out('npx rekey --env .env rotate-db').text, new RegExp(`DATABASE_URL now logs in as ${nextUser} \\(role ${db.appUser}\\)`))
  assert.match(out('npx rekey --env .env finalize --secret DATABASE_URL').text, new RegExp(`finalize: ${db.appUser} can no longer log in; DATABASE_URL uses ${nextUser}`))
  assert.deepEqual(await loginAs(envNow.DATABASE_URL ?? ''), { user: nextUser, orders: 2 })
  assert.match((await loginAs(db.appUrl)).error ?? '', /not permitted to log in/)
  // The dependents recorded; the audit log shows every step.
  const audit = out('npx rekey audit').text
  for (const [secret, method] of [['jwt-access,jwt-refresh', 'emergency'], ['JWT_SECRET', 'emergency'], ['DATABASE_URL', 'rotate-db'], ['DATABASE_URL', 'finalize-db'], ['SMTP_PASSWORD', 'manual'], ['AWS_SECRET_ACCESS_KEY', 'manual']]) {
    assert.match(audit, new RegExp(`^\\| \\S+ \\| ${secret} \\| \\S+ \\| ${method} \\|`, 'm'), `${secret} ${method}:\n${audit}`)
  }
  // 5. The forced reset marked the registered user.
  assert.match(out('npx rekey users force-reset --all').text, /^1 user must set a new password at next login/m)
  await withService(repo, async (url) => {
    // The emergency ended the session; the right password only leads to a new one.
    assert.equal((await post(`${url}/api/auth/refresh`, { refreshToken })).status, 401)
    const login = await post(`${url}/api/auth/login`, { email: EMAIL, password: PASSWORD })
    assert.equal(login.status, 403)
    assert.equal(login.body.error, 'password_change_required')
  })
})
