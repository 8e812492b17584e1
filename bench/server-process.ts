/**
 * Server processes for the benchmarks: start one on a free port and wait until it answers,
 * stop it, read the CPU time it used. Shared by bench/http.ts and bench/peers.ts.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { readFileSync } from 'node:fs'
import net from 'node:net'
import path from 'node:path'

const ROOT = path.resolve(import.meta.dirname, '..')

export interface Running { url: string, child: ChildProcess }

async function freePort(): Promise<number> {
  const server = net.createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as net.AddressInfo
  await new Promise((resolve) => server.close(resolve))
  return port
}

/**
 * Starts `node ARGS` from the repository root on a free port (`PORT`, and `--port` for rekey's
 * CLI) and resolves once `probe` answers (logs may be quiet).
 */
export async function startServer(args: string[], env: Record<string, string>, probe = '/api/health/ping'): Promise<Running> {
  const port = await freePort()
  const child = spawn(process.execPath, [...args, ...(args[0]?.includes('main.ts') ? ['--port', String(port)] : [])], { cwd: ROOT, env: { ...process.env, ...env, PORT: String(port) }, stdio: ['ignore', 'ignore', 'pipe'] })
  let err = ''
  child.stderr?.on('data', (c: Buffer) => { err += c.toString() })
  const url = `http://127.0.0.1:${port}`
  const deadline = Date.now() + 30_000
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`server exited with ${child.exitCode}: ${err.slice(-500)}`)
    try {
      await fetch(`${url}${probe}`)
      return { url, child }
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
  }
  child.kill('SIGKILL')
  throw new Error(`server did not start: ${err.slice(-500)}`)
}

/** Stops a server and waits for it to exit. */
export async function stopServer(running: Running): Promise<void> {
  running.child.removeAllListeners('exit')
  const exited = new Promise((resolve) => running.child.once('exit', resolve))
  running.child.kill('SIGTERM')
  await exited
}

/** User + system CPU time a process has used, in ms (Linux clock ticks of 10 ms); NaN off Linux. */
export function cpuMsOf(pid: number | undefined): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? []
    return (Number(fields[11]) + Number(fields[12])) * 10
  } catch {
    return Number.NaN
  }
}
