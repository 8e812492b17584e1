import { execFile, spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { main } from '../../src/cli/main.ts'

/** Runs the CLI in this process, capturing what it prints. */
export async function runCli(argv: string[], env: Record<string, string | undefined> = {}): Promise<{ code: number, stdout: string, stderr: string }> {
  let stdout = ''
  let stderr = ''
  const code = await main(argv, { stdout: (t) => { stdout += t }, stderr: (t) => { stderr += t }, env })
  return { code, stdout, stderr }
}

const BIN = path.resolve(import.meta.dirname, '../../bin/rekey.js')

/** Runs the CLI as a real process with the pinned Node, as a user would. */
export function runBin(argv: string[], options: { cwd?: string, env?: Record<string, string> } = {}): Promise<{ code: number, stdout: string, stderr: string }> {
  return new Promise((resolve) => {
    execFile(BIN, argv, { cwd: options.cwd, env: { ...process.env, PATH: `${path.dirname(process.execPath)}:${process.env.PATH ?? ''}`, ...options.env }, timeout: 30_000 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1
      resolve({ code, stdout, stderr })
    })
  })
}

/** A temp directory removed after the test. */
export function tempDir(t: { after: (fn: () => void) => void }): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'rekey-cli-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

/**
 * Starts `rekey ... serve` as a real process and waits for its listening line (then stops it
 * with SIGTERM) or for it to exit. Returns the listening log entry, or `null` with the exit code.
 */
export async function serveOnce(argv: string[], options: { cwd: string, env?: Record<string, string>, timeoutMs?: number }):
Promise<{ listening: Record<string, unknown> | null, code: number | null, stdout: string, stderr: string }> {
  const child = spawn(process.execPath, [BIN, ...argv], {
    cwd: options.cwd, env: { PATH: process.env.PATH ?? '', ...options.env }, stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stdout = ''
  let stderr = ''
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
  const listening = await new Promise<Record<string, unknown> | null>((resolve) => {
    const timer = setTimeout(() => resolve(null), options.timeoutMs ?? 20_000)
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString('utf8')
      for (const line of stdout.split('\n')) {
        if (!line.includes('rekey listening on')) continue
        clearTimeout(timer)
        resolve(JSON.parse(line) as Record<string, unknown>)
      }
    })
    child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString('utf8') })
    void exited.then(() => { clearTimeout(timer); resolve(null) })
  })
  if (child.exitCode === null) child.kill('SIGTERM')
  const code = await exited
  return { listening, code, stdout, stderr }
}
