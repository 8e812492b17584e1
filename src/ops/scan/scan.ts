/**
 * `rekey scan`: the working tree or the whole git history, through the detectors, into
 * findings sorted by file, line and commit.
 */
import { promises as fs } from 'node:fs'
import path from 'node:path'
import { RekeyError } from '../../core/errors.ts'
import { detect } from './detect.ts'
import { ENV_FILE_RULE, REKEY_FILE_RULE, fingerprintOf, isEnvFile, rekeyFileReason, type Finding } from './finding.ts'
import { listFiles, MAX_FILE_BYTES, readText } from './files.ts'
import { gitHistory, gitTopLevel } from './git.ts'
import type { LiveMatcher } from './live-secrets.ts'

/** What a scan saw, and what it found. */
export interface ScanResult {
  readonly findings: Finding[]
  /** Files read (working tree) or file changes read (history). */
  readonly files: number
  /** Commits walked (history only; 0 otherwise). */
  readonly commits: number
  /** Files skipped as binary, too large, or unreadable. */
  readonly skipped: number
  /** What the scan could not read, for stderr (history: changes whose path git's output did not give). */
  readonly notes: string[]
}

function envFileFinding(file: string, commit?: string): Finding {
  return {
    rule: ENV_FILE_RULE,
    file,
    line: 1,
    ...(commit === undefined ? {} : { commit }),
    fingerprint: fingerprintOf(ENV_FILE_RULE, file, ''),
    live: false,
    preview: '',
    message: commit === undefined
      ? `${file} is tracked by git: env files hold secrets; remove it (git rm --cached), add it to .gitignore, and rotate what it holds`
      : `${file} was committed: env files hold secrets; rotate what it held`,
  }
}

function rekeyFileFinding(file: string, reason: string, commit?: string): Finding {
  return {
    rule: REKEY_FILE_RULE,
    file,
    line: 1,
    ...(commit === undefined ? {} : { commit }),
    fingerprint: fingerprintOf(REKEY_FILE_RULE, file, ''),
    live: false,
    preview: '',
    message: commit === undefined
      ? `${file} is tracked by git: ${reason}; remove it (git rm --cached), add it to .gitignore, and rotate what it protects`
      : `${file} was committed: ${reason}; rotate what it protected`,
  }
}

function sortFindings(findings: Finding[]): Finding[] {
  return findings.sort((a, b) => a.file.localeCompare(b.file) || a.line - b.line || (a.commit ?? '').localeCompare(b.commit ?? '') || a.rule.localeCompare(b.rule))
}

/** Checks that `target` is a directory; ERR_CONFIG (bad usage) if not. */
export async function scanRoot(target: string): Promise<string> {
  const root = path.resolve(target)
  let stat
  try {
    stat = await fs.stat(root)
  } catch {
    throw new RekeyError('ERR_CONFIG', `${target} does not exist`)
  }
  if (!stat.isDirectory()) throw new RekeyError('ERR_CONFIG', `${target} is not a directory`)
  return root
}

/** Scans the files of the working tree under `root`. */
export async function scanWorkingTree(root: string, matcher: LiveMatcher): Promise<ScanResult> {
  const { files, tracked } = await listFiles(root)
  const findings: Finding[] = []
  let read = 0
  let skipped = 0
  for (const file of files) {
    if (tracked?.has(file) === true && isEnvFile(file)) findings.push(envFileFinding(file))
    const reason = tracked?.has(file) === true ? rekeyFileReason(file) : undefined
    if (reason !== undefined) findings.push(rekeyFileFinding(file, reason))
    const text = await readText(path.join(root, file))
    if (text === null) {
      skipped++
      continue
    }
    read++
    findings.push(...await detect(text, { file }, matcher))
  }
  return { findings: sortFindings(findings), files: read, commits: 0, skipped, notes: [] }
}

/** Scans what every commit reachable from any ref added, in the repository holding `root`. */
export async function scanHistory(root: string, matcher: LiveMatcher): Promise<ScanResult> {
  const top = await gitTopLevel(root)
  if (top === null) throw new RekeyError('ERR_CONFIG', `--history needs a git repository: ${root} is not in one`)
  const findings: Finding[] = []
  let changes = 0
  let commits = 0
  let skipped = 0
  const notes: string[] = []
  for await (const item of gitHistory(top, MAX_FILE_BYTES)) {
    if (!('file' in item)) {
      commits++
      continue
    }
    changes++
    if (item.file === '') {
      skipped++
      notes.push(`a file change of commit ${item.commit} was not scanned: its path could not be read from git's output`)
      continue
    }
    if (item.created && isEnvFile(item.file)) findings.push(envFileFinding(item.file, item.commit))
    const reason = item.created ? rekeyFileReason(item.file) : undefined
    if (reason !== undefined) findings.push(rekeyFileFinding(item.file, reason, item.commit))
    if (item.truncated) skipped++
    if (item.lines.length === 0) continue
    const numbers = item.lineNumbers
    findings.push(...await detect(item.lines.join('\n'), { file: item.file, commit: item.commit, lineOf: (n) => numbers[n - 1] ?? n }, matcher))
  }
  return { findings: sortFindings(findings), files: changes, commits, skipped, notes }
}
