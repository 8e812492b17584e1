/**
 * `rekey scan` with file names that git quotes or that hold line breaks, through the real CLI
 * process: every finding is reported under its real path, a path never forges an output line,
 * and nothing ends in a stack trace.
 */
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { mkdirSync, renameSync } from 'node:fs'
import path from 'node:path'
import { describe, test } from 'node:test'
import { commitAll, git, tempDir, write } from './scan-fixtures.ts'

const BIN = path.resolve(import.meta.dirname, '../../bin/rekey.js')

/** A GitHub token of its own for `tag`, assembled here so this file holds none. */
function tokenOf(tag: string): string {
  return ['gh', 'p_', `${tag}aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789`.slice(0, 36)].join('')
}

function rekey(cwd: string, ...args: string[]): { code: number | null, stdout: string, stderr: string } {
  // No store: the temp directory has no ./.rekey/rekey.db.
  const env: NodeJS.ProcessEnv = { ...process.env, HOME: cwd }
  for (const name of ['REKEY_STORE', 'REKEY_MASTER_KEY', 'REKEY_ENV_FILE']) delete env[name]
  const run = spawnSync(process.execPath, [BIN, ...args], { cwd, encoding: 'utf8', env })
  return { code: run.status, stdout: run.stdout, stderr: run.stderr }
}

interface JsonFinding { rule: string, file: string, line: number, commit?: string }

function assertNoStackTrace(stderr: string): void {
  assert.doesNotMatch(stderr, /^\s+at .*[(:]/m, stderr)
  assert.doesNotMatch(stderr, /ERR_INTERNAL|Exception/, stderr)
}

// Names git C-quotes (a TAB, a LF, `"`, `\`), one it ends with a TAB (a space), non-ASCII.
const NAMES = ['plain.env', 'tab\there.env', 'line\nbreak.env', 'quote"d.env', 'back\\slash.env', 'has space.env', 'dir with space/é ü.env']

describe('rekey scan and file names', () => {
  test('--history reports every file\'s token under its real path, renames included', (t) => {
    const root = tempDir(t)
    git(root, 'init', '-q', '-b', 'main')
    // plain.env's filler makes git see its move as a rename, which adds one line.
    const filler = Array.from({ length: 30 }, (_, i) => `setting_${i}=value ${i}\n`).join('')
    NAMES.forEach((name, i) => write(root, name, `# ${i}\ny=${tokenOf(String(i))}\n${i === 0 ? filler : ''}`))
    const first = commitAll(root, 'names')
    mkdirSync(path.join(root, 'moved'))
    renameSync(path.join(root, 'plain.env'), path.join(root, 'moved', 'new\tname.env'))
    write(root, 'moved/new\tname.env', `# 0\ny=${tokenOf('0')}\n${filler}z=${tokenOf('r')}\n`)
    const second = commitAll(root, 'rename')

    const { code, stdout, stderr } = rekey(root, 'scan', '--history', '--format', 'json')
    assert.equal(code, 1, stderr)
    assertNoStackTrace(stderr)
    const findings = (JSON.parse(stdout) as { findings: JsonFinding[] }).findings.filter((f) => f.rule === '@secretlint/secretlint-rule-github')
    const seen = findings.map((f) => `${f.file}:${f.line}@${f.commit}`).sort()
    const expected = [...NAMES.map((name) => `${name}:2@${first}`), `moved/new\tname.env:33@${second}`].sort()
    assert.deepEqual(seen, expected)
  })

  test('--history text output shows a quoted path escaped, on its own line; diff.noprefix changes nothing', (t) => {
    const root = tempDir(t)
    git(root, 'init', '-q', '-b', 'main')
    git(root, 'config', 'diff.noprefix', 'true')
    write(root, 'c.env', `y=${tokenOf('c')}\n`)
    write(root, 'tab\there.env', 'a=1\n')
    write(root, 'fake\n1 finding(s) in 0 commits.env', `y=${tokenOf('f')}\n`)
    commitAll(root, 'x')
    const { code, stdout, stderr } = rekey(root, 'scan', '--history')
    assert.equal(code, 1, stderr)
    assertNoStackTrace(stderr)
    assert.match(stdout, /^c\.env:1 @ [0-9a-f]{12} {2}@secretlint\/secretlint-rule-github {2}ghp_…$/m)
    assert.match(stdout, /^fake\\u000a1 finding\(s\) in 0 commits\.env:1 @ [0-9a-f]{12} {2}@secretlint/m)
    assert.doesNotMatch(stdout, /^1 finding\(s\) in 0 commits/m, 'no forged line')
    assert.match(stdout, /^2 finding\(s\) in 1 commits, 3 file changes$/m)
  })

  test('the working tree: a name with LF and CR, or secretlint\'s ::end, is scanned, shown escaped, exit 1', (t) => {
    const root = tempDir(t)
    const forged = 'config.env\nno leaks found in 1 files\r\n'
    write(root, forged, `x=${tokenOf('w')}\n`)
    write(root, 'ok.txt', `x=${tokenOf('o')}\n`)
    // secretlint's profiler reads `::end` and `::start` in its own mark names.
    write(root, 'x::end||y.env', `x=${tokenOf('e')}\n`)
    write(root, 'x::start', `x=${tokenOf('s')}\n`)

    const text = rekey(root, 'scan', '.')
    assert.equal(text.code, 1, text.stderr)
    assertNoStackTrace(text.stderr)
    assert.match(text.stdout, /^config\.env\\u000ano leaks found in 1 files\\u000d\\u000a:1 {2}@secretlint\/secretlint-rule-github {2}ghp_…$/m)
    assert.match(text.stdout, /^ok\.txt:1 {2}@secretlint\/secretlint-rule-github {2}ghp_…$/m)
    assert.doesNotMatch(text.stdout, /^no leaks found/m, 'no forged line')
    assert.doesNotMatch(text.stdout, /\r/)
    assert.match(text.stdout, /^x::end\|\|y\.env:1 {2}@secretlint/m)
    assert.match(text.stdout, /^4 finding\(s\) in 4 files$/m)

    const json = rekey(root, 'scan', '.', '--format', 'json')
    assert.equal(json.code, 1, json.stderr)
    const files = (JSON.parse(json.stdout) as { findings: JsonFinding[] }).findings.map((f) => f.file).sort()
    assert.deepEqual(files, [forged, 'ok.txt', 'x::end||y.env', 'x::start'].sort())
  })

  test('the working tree of a git repository: the same names, tracked', (t) => {
    const root = tempDir(t)
    git(root, 'init', '-q', '-b', 'main')
    write(root, 'a\nb.env', `x=${tokenOf('g')}\n`)
    commitAll(root, 'x')
    const { code, stdout, stderr } = rekey(root, 'scan', '.')
    assert.equal(code, 1, stderr)
    assertNoStackTrace(stderr)
    assert.match(stdout, /^a\\u000ab\.env:1 {2}@secretlint\/secretlint-rule-github {2}ghp_…$/m)
  })
})
