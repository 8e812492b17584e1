/** Item 5 of issue 15: what rekey creates is named on creation, and `rekey scan` flags it when committed. */
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { test } from 'node:test'
import { runBin, runCli, tempDir } from './helpers.ts'

test('the first env-file command names .rekey/, master.key and .env.bak*, and says they belong in .gitignore', async (t) => {
  const dir = tempDir(t)
  const env = path.join(dir, '.env')
  const first = await runCli(['--env-file', env, 'gen', '--var', 'JWT_SECRET'])
  assert.equal(first.code, 0, first.stderr)
  assert.match(first.stderr, /created .*\.rekey\/ with rekey\.db \(the audit log and rotation inventory\) and master\.key/)
  assert.match(first.stderr, /keeps the old file as \.env\.bak\*/)
  assert.match(first.stderr, /They belong in \.gitignore, never in git: "\.rekey\/" and "\.env\.bak\*"/)
  const rotate = await runCli(['--env-file', env, 'rotate'])
  assert.equal(rotate.code, 0, rotate.stderr)
  assert.doesNotMatch(rotate.stderr, /They belong in \.gitignore/, 'said once, when the files are created')

  // The entries it names do keep everything it created out of git.
  writeFileSync(path.join(dir, '.gitignore'), '.rekey/\n.env.bak*\n.env\n')
  execFileSync('git', ['init', '-q'], { cwd: dir })
  const status = execFileSync('git', ['status', '--porcelain', '--untracked-files=all'], { cwd: dir, encoding: 'utf8' })
  assert.deepEqual(status.trim().split('\n'), ['?? .gitignore'])
})

test('rekey scan flags a tracked master.key, .env.bak generations, the store and a backups folder, in the tree and in history', async (t) => {
  const dir = tempDir(t)
  const git = (...args: string[]): string => execFileSync('git', ['-c', 'user.name=t', '-c', 'user.email=t@example.com', ...args], { cwd: dir, encoding: 'utf8' })
  git('init', '-q')
  const files = ['master.key', '.env.bak', '.env.bak.1', '.rekey/rekey.db', 'backups/rekey-backup-20260101T000000Z.tgz.age', 'backups/notes.txt', 'src/app.js']
  for (const file of files) {
    mkdirSync(path.dirname(path.join(dir, file)), { recursive: true })
    writeFileSync(path.join(dir, file), file === 'src/app.js' ? 'export const ok = 1\n' : 'opaque\n')
  }
  git('add', '.')
  git('commit', '-qm', 'everything')
  for (const history of [false, true]) {
    const r = await runCli(['scan', dir, '--format', 'json', ...(history ? ['--history'] : [])])
    assert.equal(r.code, 1, r.stderr)
    const { findings } = JSON.parse(r.stdout) as { findings: { file: string, rule: string, message: string }[] }
    const flagged = new Set(findings.map((f) => f.file))
    for (const file of files.filter((f) => f !== 'src/app.js')) assert.ok(flagged.has(file), `${file} flagged (history: ${history})`)
    assert.ok(!flagged.has('src/app.js'))
    const key = findings.find((f) => f.file === 'master.key')
    assert.equal(key?.rule, 'rekey/tracked-rekey-file')
    assert.match(key?.message ?? '', /master key/)
    assert.equal(findings.find((f) => f.file === '.env.bak.1')?.rule, 'rekey/tracked-env-file')
  }
})

/** A project folder named so that its name would show if the advice named the folder itself. */
function project(t: { after: (fn: () => void) => void }, gitignore?: string, git = false): string {
  const dir = path.join(tempDir(t), 'proj')
  mkdirSync(dir)
  writeFileSync(path.join(dir, '.env'), `JWT_SECRET=${'ab'.repeat(24)}\n`, { mode: 0o600 })
  if (gitignore !== undefined) writeFileSync(path.join(dir, '.gitignore'), gitignore)
  if (git) execFileSync('git', ['init', '-q'], { cwd: dir })
  return dir
}

const untracked = (dir: string): string[] =>
  execFileSync('git', ['status', '--porcelain', '--untracked-files=all'], { cwd: dir, encoding: 'utf8' }).trim().split('\n')

test('--env .env --store rekey.db: the advice names rekey.db*, master.key and .env.bak* (never the project folder), and warns that git would commit them', async (t) => {
  const dir = project(t, '.env\n', true)
  const r = await runBin(['--env', '.env', '--store', 'rekey.db', 'rotate'], { cwd: dir })
  assert.equal(r.code, 0, r.stderr)
  assert.match(r.stderr, /created rekey\.db \(the audit log and rotation inventory\) and master\.key \(its key\)/)
  assert.match(r.stderr, /They belong in \.gitignore, never in git: "rekey\.db\*", "master\.key" and "\.env\.bak\*"\n/)
  assert.doesNotMatch(r.stderr, /"proj\/"|"\.\/"|"\.\.\//, 'never the project folder or a parent')
  assert.match(r.stderr, /rekey: warning: master\.key, rekey\.db and \.env\.bak\* are NOT ignored by git \(git check-ignore\)/)
  assert.deepEqual(untracked(dir).sort(), ['?? .env.bak.1', '?? .gitignore', '?? master.key', '?? rekey.db'], 'what the warning is about')

  // The entries it names keep exactly what it created out of git.
  writeFileSync(path.join(dir, '.gitignore'), '.env\nrekey.db*\nmaster.key\n.env.bak*\n')
  assert.deepEqual(untracked(dir), ['?? .gitignore'])
})

test('no warning when the .gitignore already covers the created files; a warning from a .gitignore outside any git work tree too', async (t) => {
  const covered = project(t, 'rekey.db*\nmaster.key\n.env.bak*\n')
  const quiet = await runBin(['--env', '.env', '--store', 'rekey.db', 'rotate'], { cwd: covered })
  assert.equal(quiet.code, 0, quiet.stderr)
  assert.match(quiet.stderr, /They belong in \.gitignore/)
  assert.doesNotMatch(quiet.stderr, /NOT ignored/)

  const partial = project(t, '.env.bak*\nrekey.db*\n')
  const warned = await runBin(['--env', '.env', '--store', 'rekey.db', 'rotate'], { cwd: partial })
  assert.equal(warned.code, 0, warned.stderr)
  assert.match(warned.stderr, /rekey: warning: master\.key is NOT ignored by git/)

  const none = project(t)
  const silent = await runBin(['--env', '.env', '--store', 'rekey.db', 'rotate'], { cwd: none })
  assert.equal(silent.code, 0, silent.stderr)
  assert.doesNotMatch(silent.stderr, /NOT ignored/, 'no .gitignore and no git: nothing to check')
})

test('a store outside the project is not offered to its .gitignore; a folder of its own is named as the folder', async (t) => {
  const dir = project(t)
  const elsewhere = path.join(tempDir(t), 'rekey.db')
  const outside = await runBin(['--env', '.env', '--store', elsewhere, 'rotate'], { cwd: dir })
  assert.equal(outside.code, 0, outside.stderr)
  assert.match(outside.stderr, /They belong in \.gitignore, never in git: "\.env\.bak\*"\n/)

  const own = project(t)
  const nested = await runBin(['--env', '.env', '--store', 'data/rekey.db', 'rotate'], { cwd: own })
  assert.equal(nested.code, 0, nested.stderr)
  assert.match(nested.stderr, /created data\/ with rekey\.db .*They belong in \.gitignore, never in git: "data\/" and "\.env\.bak\*"\n/)
})

test('gen --var into a new env file in a git work tree that does not ignore it warns that git would commit its secrets', async (t) => {
  const dir = path.join(tempDir(t), 'proj')
  mkdirSync(dir)
  execFileSync('git', ['init', '-q'], { cwd: dir })
  const r = await runBin(['--env', '.env', 'gen', '--var', 'ENCRYPTION_KEY'], { cwd: dir })
  assert.equal(r.code, 0, r.stderr)
  assert.match(r.stderr, /^rekey: warning: \.env is NOT ignored by git \(git check-ignore\): add it to \.gitignore before any "git add", or "git add \." commits it$/m)
  assert.ok(untracked(dir).includes('?? .env'), 'what the warning is about')
  // Ignored, or an existing file (the user's own): no such warning.
  const ignored = path.join(tempDir(t), 'proj')
  mkdirSync(ignored)
  execFileSync('git', ['init', '-q'], { cwd: ignored })
  writeFileSync(path.join(ignored, '.gitignore'), '.env\n.env.bak*\n.rekey/\n')
  const quiet = await runBin(['--env', '.env', 'gen', '--var', 'ENCRYPTION_KEY'], { cwd: ignored })
  assert.equal(quiet.code, 0, quiet.stderr)
  assert.doesNotMatch(quiet.stderr, /NOT ignored/)
})
