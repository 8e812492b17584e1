/**
 * `rekey scan` throughput on a generated repository: files per second over the working tree,
 * commits per second over the history. The repository is written with `git fast-import`
 * (seconds, not minutes): COMMITS commits, each changing a few of FILES source files, with a
 * leaked token every 500 commits.
 *
 *   node bench/scan.ts [COMMITS=3000] [FILES=1000]
 */
import { execFileSync, spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { LiveMatcher } from '../src/ops/scan/live-secrets.ts'
import { scanHistory, scanWorkingTree } from '../src/ops/scan/scan.ts'

const COMMITS = Number(process.argv[2] ?? 3000)
const FILES = Number(process.argv[3] ?? 1000)

function sourceFile(seed: number, lines = 40): string {
  const out: string[] = []
  for (let i = 0; i < lines; i++) out.push(`export const value${seed}_${i} = '${randomBytes(12).toString('base64')}' // line ${i}`)
  return `${out.join('\n')}\n`
}

function generate(dir: string): void {
  execFileSync('git', ['init', '-q', '-b', 'main', dir])
  const chunks: string[] = []
  const blob = (text: string): string => `data ${Buffer.byteLength(text)}\n${text}\n`
  for (let c = 0; c < COMMITS; c++) {
    const message = `commit ${c}`
    chunks.push(`commit refs/heads/main\ncommitter Bench <bench@example.test> ${1_700_000_000 + c * 60} +0000\n${blob(message)}`)
    if (c === 0) {
      for (let f = 0; f < FILES; f++) chunks.push(`M 100644 inline src/mod${f}.ts\n${blob(sourceFile(f))}`)
    } else {
      for (let k = 0; k < 3; k++) {
        const f = (c * 7 + k * 13) % FILES
        chunks.push(`M 100644 inline src/mod${f}.ts\n${blob(sourceFile(c * 10 + k))}`)
      }
      if (c % 500 === 0) chunks.push(`M 100644 inline config/leak${c}.txt\n${blob(`token=${['gh', 'p_'].join('')}${randomBytes(18).toString('hex')}\n`)}`)
    }
  }
  const result = spawnSync('git', ['fast-import', '--quiet'], { cwd: dir, input: chunks.join(''), maxBuffer: 1 << 30 })
  if (result.status !== 0) throw new Error(`fast-import failed: ${result.stderr.toString()}`)
  execFileSync('git', ['checkout', '-q', '-f', 'main'], { cwd: dir })
}

const dir = mkdtempSync(path.join(os.tmpdir(), 'rekey-bench-scan-'))
try {
  let t = performance.now()
  generate(dir)
  const genMs = performance.now() - t
  const matcher = new LiveMatcher()
  matcher.add(randomBytes(32).toString('hex'), 'JWT_SECRET in bench.env')
  t = performance.now()
  const tree = await scanWorkingTree(dir, matcher)
  const treeMs = performance.now() - t
  t = performance.now()
  const history = await scanHistory(dir, matcher)
  const historyMs = performance.now() - t
  const rate = (n: number, ms: number): string => (n / (ms / 1000)).toFixed(0)
  console.log(`generated ${COMMITS} commits x ${FILES} files in ${(genMs / 1000).toFixed(1)} s; node ${process.version}, ${os.cpus()[0]?.model ?? 'cpu'} x${os.cpus().length}`)
  console.log('| scan | items | findings | seconds | rate |')
  console.log('| --- | ---: | ---: | ---: | ---: |')
  console.log(`| working tree | ${tree.files} files | ${tree.findings.length} | ${(treeMs / 1000).toFixed(2)} | ${rate(tree.files, treeMs)} files/s |`)
  console.log(`| --history | ${history.commits} commits (${history.files} file changes) | ${history.findings.length} | ${(historyMs / 1000).toFixed(2)} | ${rate(history.commits, historyMs)} commits/s (${rate(history.files, historyMs)} changes/s) |`)
} finally {
  rmSync(dir, { recursive: true, force: true })
}
