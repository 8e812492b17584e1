/**
 * The git side of a scan: is a directory in a repository, which files does the repository
 * see (tracked, and untracked but not ignored), and the lines each commit added, streamed
 * from one `git log -p --all` so that memory stays flat on long histories. Also whether git
 * ignores the files rekey creates (for the note that names them).
 */
import { execFile, spawn } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { diffGitPath, headerPath } from './git-path.ts'

// Fixed options for every git call: no pager, no colour, non-ASCII paths unquoted.
const GIT = ['-c', 'core.quotePath=false', '-c', 'color.ui=false']

function git(cwd: string, args: readonly string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('git', [...GIT, ...args], { cwd, maxBuffer: 256 * 1024 * 1024, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err !== null) reject(new Error(`git ${args[0] ?? ''} failed: ${stderr.trim() || err.message}`))
      else resolve(stdout)
    })
  })
}

/** The repository's top directory, or null when `dir` is not inside a git work tree. */
export async function gitTopLevel(dir: string): Promise<string | null> {
  try {
    return (await git(dir, ['rev-parse', '--show-toplevel'])).trim()
  } catch {
    return null
  }
}

/** The exit code of a git command (0, 1...), or null when git could not run (not installed). */
function gitStatus(cwd: string, args: readonly string[]): Promise<number | null> {
  return new Promise((resolve) => {
    execFile('git', [...GIT, ...args], { cwd, timeout: 10_000 }, (err) => {
      if (err === null) resolve(0)
      else resolve(typeof err.code === 'number' ? err.code : null)
    })
  })
}

/**
 * Which of `files` (paths under `dir`) git would ignore, by `git check-ignore`: in the work
 * tree `dir` is in, or, outside any, by the `.gitignore` files under `dir` alone (through an
 * empty repository of the moment). `null` when git is not available.
 */
export async function gitIgnored(dir: string, files: readonly string[]): Promise<Map<string, boolean> | null> {
  let scratch: string | undefined
  const where: string[] = []
  if (await gitTopLevel(dir) === null) {
    scratch = await mkdtemp(path.join(tmpdir(), 'rekey-git-'))
    if (await gitStatus(scratch, ['init', '-q', '--bare', scratch]) !== 0) {
      await rm(scratch, { recursive: true, force: true })
      return null
    }
    where.push(`--git-dir=${scratch}`, `--work-tree=${dir}`)
  }
  try {
    const ignored = new Map<string, boolean>()
    for (const file of files) {
      // 0: ignored; 1: not ignored; anything else: git could not tell.
      const code = await gitStatus(dir, [...where, 'check-ignore', '-q', '--', path.relative(dir, file)])
      if (code !== 0 && code !== 1) return null
      ignored.set(file, code === 0)
    }
    return ignored
  } finally {
    if (scratch !== undefined) await rm(scratch, { recursive: true, force: true })
  }
}

/** Files git sees under `dir`, relative to it: tracked, and untracked ones .gitignore does not exclude. */
export async function gitFiles(dir: string): Promise<{ all: string[], tracked: Set<string> }> {
  const split = (out: string): string[] => out.split('\0').filter((f) => f !== '')
  const tracked = split(await git(dir, ['ls-files', '-z', '--cached']))
  const untracked = split(await git(dir, ['ls-files', '-z', '--others', '--exclude-standard']))
  return { all: [...new Set([...tracked, ...untracked])], tracked: new Set(tracked) }
}

/** What one commit added to one file. */
export interface AddedLines {
  readonly commit: string
  readonly file: string
  /** The commit created the file. */
  readonly created: boolean
  /** Added lines, in order, with their line numbers in the new file. */
  readonly lines: string[]
  readonly lineNumbers: number[]
  /** More than the size limit was added: the rest was not scanned. */
  readonly truncated: boolean
}

const COMMIT_MARK = '\u0001commit '

/** The lines of a byte stream, split here: faster than readline under a slow consumer. */
async function* lines(stream: AsyncIterable<string>): AsyncGenerator<string> {
  let rest = ''
  for await (const chunk of stream) {
    const text = rest + chunk
    const parts = text.split('\n')
    rest = parts.pop() ?? ''
    yield* parts
  }
  if (rest !== '') yield rest
}

/**
 * Every file change of every commit reachable from any ref, as added lines. Deleted files,
 * binary diffs and merge commits' (empty) diffs bring nothing.
 */
export async function* gitHistory(root: string, maxBytesPerFile: number): AsyncGenerator<AddedLines | { commit: string }> {
  const child = spawn('git', [...GIT, 'log', '--all', '-p', '--no-ext-diff', '--no-textconv', '--unified=0', '--src-prefix=a/', '--dst-prefix=b/', `--format=${COMMIT_MARK}%H`], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stderr = ''
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => { if (stderr.length < 4096) stderr += chunk })
  const exited = new Promise<number>((resolve, reject) => {
    child.once('error', reject)
    child.once('close', (code) => resolve(code ?? 1))
  })
  let commit = ''
  let current: { file: string, created: boolean, lines: string[], lineNumbers: number[], bytes: number, truncated: boolean } | null = null
  let inHeader = false
  let nextLine = 0
  const flush = (): AddedLines | null => {
    const done = current
    current = null
    return done === null || (done.lines.length === 0 && !done.created) ? null : { commit, ...done }
  }
  try {
    for await (const line of lines(child.stdout.setEncoding('utf8'))) {
      if (line.startsWith(COMMIT_MARK)) {
        const done = flush()
        if (done !== null) yield done
        commit = line.slice(COMMIT_MARK.length)
        yield { commit }
        continue
      }
      if (line.startsWith('diff --git ')) {
        const done = flush()
        if (done !== null) yield done
        // '' when git's header cannot be read: the caller skips the change and says so.
        current = { file: diffGitPath(line.slice('diff --git '.length)) ?? '', created: false, lines: [], lineNumbers: [], bytes: 0, truncated: false }
        inHeader = true
        continue
      }
      if (current === null) continue
      if (inHeader) {
        if (line.startsWith('new file mode')) current.created = true
        else if (line.startsWith('+++ ') && line !== '+++ /dev/null') current.file = headerPath(line.slice(4), 'b/') ?? current.file
        else if (line.startsWith('rename to ')) current.file = headerPath(line.slice(10), '') ?? current.file
        else if (line.startsWith('@@')) inHeader = false
        if (inHeader) continue
      }
      if (line.startsWith('@@')) {
        // @@ -a,b +c,d @@: added lines start at line c of the new file.
        nextLine = Number(/\+(\d+)/.exec(line)?.[1] ?? '1')
        continue
      }
      if (line.startsWith('+')) {
        if (current.bytes + line.length > maxBytesPerFile) current.truncated = true
        else {
          current.lines.push(line.slice(1))
          current.lineNumbers.push(nextLine)
          current.bytes += line.length
        }
        nextLine++
      }
    }
    const done = flush()
    if (done !== null) yield done
  } finally {
    if (child.exitCode === null) child.kill()
  }
  const code = await exited
  if (code !== 0) throw new Error(`git log failed: ${stderr.trim()}`)
}
