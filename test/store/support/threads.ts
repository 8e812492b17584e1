/** Runs SQLite store operations from several worker threads that start at the same instant. */
import { Worker } from 'node:worker_threads'
import type { WorkerTask } from './sqlite-worker.ts'

/** Starts one worker per task, releases them together once all opened the store, returns their results. */
export async function runInThreads(tasks: ReadonlyArray<Omit<WorkerTask, 'start'>>): Promise<unknown[]> {
  const start = new SharedArrayBuffer(4)
  const workers = tasks.map((task) => new Worker(new URL('./sqlite-worker.ts', import.meta.url), { workerData: { ...task, start } }))
  const outcomes = workers.map((worker) => {
    let onReady: () => void = () => {}
    const ready = new Promise<void>((resolve) => { onReady = resolve })
    const result = new Promise<unknown>((resolve, reject) => {
      worker.on('message', (msg: { ready?: boolean, result?: unknown, error?: string }) => {
        if (msg.ready === true) onReady()
        else if (msg.error !== undefined) reject(new Error(msg.error))
        else resolve(msg.result)
      })
      worker.on('error', reject)
      worker.on('exit', (code) => reject(new Error(`worker exited with code ${code} before answering`)))
    })
    result.catch(() => onReady()) // a worker that failed to open must not block the start
    return { ready, result }
  })
  try {
    await Promise.all(outcomes.map((o) => o.ready))
    const flag = new Int32Array(start)
    Atomics.store(flag, 0, 1)
    Atomics.notify(flag, 0)
    return await Promise.all(outcomes.map((o) => o.result))
  } finally {
    await Promise.all(workers.map((w) => w.terminate()))
  }
}
