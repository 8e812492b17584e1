/**
 * A worker thread that opens its own SQLite store on a shared file, as another process would,
 * waits for the start signal, runs one operation and reports the result. Loaded outside a
 * worker (e.g. by a bare `node --test`), it does nothing.
 */
import { parentPort, workerData } from 'node:worker_threads'
import { openStore } from '../../../src/store/open.ts'
import { DAY, auditEvent, chainHash, sha256 } from './fixtures.ts'

/** What the test asks a worker to do. */
export interface WorkerTask {
  readonly path: string
  readonly id: number
  /** An Int32Array's buffer: the worker waits until index 0 is non-zero. */
  readonly start: SharedArrayBuffer
  readonly op: 'rotate' | 'audit'
  readonly oldToken?: string
  readonly now?: number
  readonly count?: number
}

if (parentPort !== null) {
  const port = parentPort
  const task = workerData as WorkerTask
  const store = await openStore(task.path, { busyTimeoutMs: 10_000 })
  port.postMessage({ ready: true })
  Atomics.wait(new Int32Array(task.start), 0, 0)
  try {
    if (task.op === 'rotate') {
      const now = task.now ?? 0
      const result = await store.rotateToken({
        oldHash: sha256(task.oldToken ?? ''),
        next: { tokenHash: sha256(`next-${task.id}`), kid: 'kid-w', issuedAt: now, expiresAt: now + DAY },
        now,
        overlapMs: 10_000,
      })
      port.postMessage({ result })
    } else {
      for (let i = 0; i < (task.count ?? 0); i++) await store.appendAudit(auditEvent(`worker ${task.id} #${i}`), chainHash)
      port.postMessage({ result: 'done' })
    }
  } catch (err) {
    port.postMessage({ error: String(err) })
  } finally {
    await store.close()
  }
}
