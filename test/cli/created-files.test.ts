/** Item 5 of issue 15: what rekey creates is named on creation, and `rekey scan` flags it when committed. */
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { test } from 'node:test'
import { runCli, tempDir } from './helpers.ts'

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
