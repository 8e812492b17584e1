/**
 * Item 8 of issue 15: every command of docs/leak-response.md runs, in order, on a repository
 * that committed its .env, with a managed store, an env file and a bare remote, and does what
 * the runbook says.
 */
import assert from 'node:assert/strict'
import { execFileSync, spawnSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { test } from 'node:test'
import { startServer } from '../../src/http/server.ts'

const ROOT = path.resolve(import.meta.dirname, '../..')
const DOC = readFileSync(path.join(ROOT, 'docs/leak-response.md'), 'utf8')
const BIN = path.join(ROOT, 'bin/rekey.js')

test('docs/leak-response.md: every command runs and the leak is gone from the remote', async (t) => {
  const hasFilterRepo = spawnSync('git', ['filter-repo', '--version']).status === 0
  if (!hasFilterRepo) return t.skip('git filter-repo is not installed (Debian: git-filter-repo); .ci/run installs it')
  const dir = mkdtempSync(path.join(os.tmpdir(), 'rekey-leak-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  const repo = path.join(dir, 'app')
  const remote = path.join(dir, 'remote.git')
  mkdirSync(repo)
  const git = (cwd: string, ...args: string[]): string => execFileSync('git', ['-c', 'user.name=dev', '-c', 'user.email=dev@example.com', ...args], { cwd, encoding: 'utf8' })
  git(dir, 'init', '-q', '--bare', remote)
  git(repo, 'init', '-q', '-b', 'main')
  // The leak: a committed .env with the JWT secret and the dependents.
  const leaked = 'a3f9c2e71b8d4f6a0c5e9b2d7f1a8c3e6b0d4f9a2c7e1b5d8f3a6c0e9b4d2f7a'
  writeFileSync(path.join(repo, '.env'), `JWT_SECRET=${leaked}\nSMTP_PASSWORD=smtp-password-0123456789abcdef\nAWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n`)
  writeFileSync(path.join(repo, 'app.js'), 'export const app = 1\n')
  git(repo, 'add', '.env', 'app.js')
  git(repo, 'commit', '-qm', 'initial, with the .env')
  git(repo, 'remote', 'add', 'origin', remote)
  git(repo, 'push', '-q', 'origin', 'main')
  // Not part of the app: the CLI, and the managed store (made by a first `rekey serve`).
  writeFileSync(path.join(repo, '.git/info/exclude'), 'node_modules/\n.rekey/\n')
  mkdirSync(path.join(repo, 'node_modules/.bin'), { recursive: true })
  symlinkSync(BIN, path.join(repo, 'node_modules/.bin/rekey'))
  const server = await startServer({ env: { REKEY_STORE: path.join(repo, '.rekey/rekey.db'), REKEY_SCHEDULER: 'off' }, cwd: repo, flags: { port: 0 }, logDestination: { write: () => true } as never })
  await server.close()

  let script = 'set -euo pipefail\n'
  let commands = 0
  for (const m of DOC.matchAll(/```sh\n([\s\S]*?)```/g)) {
    for (const line of (m[1] as string).split('\n')) {
      if (line.trim() === '') continue
      commands++
      script += `echo "+ ${line.replace(/["`$\\]/g, '\\$&')}"\n${line}\n`
    }
  }
  assert.ok(commands >= 10, `the runbook's commands (${commands})`)
  writeFileSync(path.join(dir, 'runbook.sh'), script)
  const env = {
    ...process.env,
    PATH: `${path.dirname(process.execPath)}:${process.env.PATH ?? ''}`,
    REMOTE: remote, npm_config_cache: path.join(dir, '.npm'),
    GIT_AUTHOR_NAME: 'dev', GIT_AUTHOR_EMAIL: 'dev@example.com', GIT_COMMITTER_NAME: 'dev', GIT_COMMITTER_EMAIL: 'dev@example.com',
  }
  delete (env as Record<string, string | undefined>).REKEY_STORE
  const run = spawnSync('bash', [path.join(dir, 'runbook.sh')], { cwd: repo, env, encoding: 'utf8', timeout: 120_000 })
  assert.equal(run.status, 0, `${run.stdout}\n${run.stderr}`)

  // 1. The scan found the committed .env and the secrets in it, masked.
  assert.match(run.stdout, /\.env/)
  assert.match(run.stdout, /findings: exit 1/)
  assert.ok(!run.stdout.includes(leaked) && !run.stderr.includes(leaked), 'the leaked value is never printed')
  // 2. The env-file emergency replaced the leaked secret.
  const envNow = readFileSync(path.join(repo, '.env'), 'utf8')
  assert.ok(!envNow.includes(leaked))
  assert.match(envNow, /^JWT_SECRET=[0-9a-f]{64}$/m)
  assert.doesNotMatch(envNow, /^JWT_SECRET_PREV=/m)
  // --shred-backups: no backup generation beside the file still holds the leaked value.
  for (const name of readdirSync(repo).filter((f) => f.startsWith('.env.bak'))) assert.ok(!readFileSync(path.join(repo, name), 'utf8').includes(leaked), name)
  // 3. Neither the local history nor the remote holds the file any more.
  assert.equal(git(repo, 'log', '--all', '--format=%H', '--', '.env').trim(), '')
  assert.equal(git(remote, 'log', '--all', '--format=%H', '--', '.env').trim(), '')
  assert.ok(!git(remote, 'log', '--all', '-p').includes(leaked))
  // 4. The audit log shows the emergency and the recorded rotations.
  assert.match(run.stdout, /SMTP_PASSWORD/)
  assert.match(run.stdout, /AWS_SECRET_ACCESS_KEY/)
  assert.match(run.stdout, /emergency/)
  // 5. The forced password reset ran (no user has registered in this store yet).
  assert.match(run.stdout, /0 users must set a new password at next login/)
})
