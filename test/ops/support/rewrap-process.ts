/**
 * `rekey rewrap` as a real process, its JSON progress lines parsed as they come, so a test
 * can act at a given point of the run (kill -9 it, stop it, start a second one).
 */
import { spawn, type ChildProcess } from 'node:child_process'
import path from 'node:path'

const BIN = path.resolve(import.meta.dirname, '../../../bin/rekey.js')

/** How a rewrap process ended, with its stdout lines parsed. */
export interface RewrapRun {
  readonly code: number | null
  readonly signal: string | null
  readonly lines: Record<string, unknown>[]
  readonly stderr: string
}

/**
 * Runs `rekey ARGS` in `cwd`; `onLine(line, child)` sees every JSON line as it arrives.
 * Resolves when the process has exited.
 */
export function rewrapProcess(cwd: string, args: string[], onLine?: (line: Record<string, unknown>, child: ChildProcess) => void): Promise<RewrapRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd, stdio: ['ignore', 'pipe', 'pipe'] })
    const lines: Record<string, unknown>[] = []
    let buffer = ''
    let stderr = ''
    child.stderr.setEncoding('utf8').on('data', (t: string) => { stderr += t })
    child.stdout.setEncoding('utf8').on('data', (t: string) => {
      buffer += t
      let nl: number
      while ((nl = buffer.indexOf('\n')) >= 0) {
        const line = JSON.parse(buffer.slice(0, nl)) as Record<string, unknown>
        buffer = buffer.slice(nl + 1)
        lines.push(line)
        onLine?.(line, child)
      }
    })
    child.on('error', reject)
    child.on('close', (code, signal) => resolve({ code, signal, lines, stderr }))
  })
}

/** A callback for {@link rewrapProcess} that kills the run (SIGKILL) once a progress line reaches `rows`. */
export const killAt = (rows: number) => (line: Record<string, unknown>, child: ChildProcess): void => {
  if (line.event === 'progress' && Number(line.done) >= rows) child.kill('SIGKILL')
}
