/**
 * The refresh load of bench/peers.ts, the same client for every server: one worker per
 * session chain, each sending its next refresh only after the answer to the previous one
 * (keep-alive HTTP through one node:http Agent), so every request carries the token the
 * server last issued. A chain is never abandoned mid-request: when the time is up, each
 * worker finishes the refresh in flight and keeps its answer, so the next round goes on
 * from there. Only 200s count; any other answer ends that chain and is reported, because
 * in a correct run it cannot happen (a 401 or 409 means the bench or the server is wrong).
 */
import http from 'node:http'

/** What one run of the chains measured. Latencies in milliseconds. */
export interface ChainRun {
  /** Successful refreshes per second over the run. */
  readonly perSecond: number
  readonly refreshes: number
  readonly p50: number
  readonly p99: number
  /** Answers other than 200, and requests that failed; 0 in a valid run. */
  readonly errors: number
  /** The first failure, for the report (status and the server's error code, never a token). */
  readonly firstError: string | null
}

interface Answer { status: number, body: string }

function post(agent: http.Agent, url: URL, body: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, {
      method: 'POST', agent,
      headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
    }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => { text += chunk })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }))
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end(body)
  })
}

function errorCode(answer: Answer): string {
  try {
    const parsed = JSON.parse(answer.body) as { error?: unknown }
    return `${answer.status} ${String(parsed.error)}`
  } catch {
    return `${answer.status}`
  }
}

const percentile = (sorted: number[], p: number): number => sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] as number

/**
 * Walks every chain of `tokens` (one refresh token per chain, replaced in place by each
 * answer's successor) for `durationMs`, all chains at once.
 */
export async function runChains(base: string, tokens: string[], durationMs: number): Promise<ChainRun> {
  const url = new URL('/api/auth/refresh', base)
  const agent = new http.Agent({ keepAlive: true, maxSockets: tokens.length })
  const latencies: number[] = []
  let errors = 0
  let firstError: string | null = null
  const started = performance.now()
  const deadline = started + durationMs
  const worker = async (slot: number): Promise<void> => {
    while (performance.now() < deadline) {
      const sent = performance.now()
      let answer: Answer
      try {
        answer = await post(agent, url, `{"refreshToken":"${tokens[slot]}"}`)
      } catch (err) {
        errors++
        firstError ??= `request failed: ${(err as Error).message}`
        return
      }
      if (answer.status !== 200) {
        errors++
        firstError ??= errorCode(answer)
        return
      }
      latencies.push(performance.now() - sent)
      tokens[slot] = (JSON.parse(answer.body) as { refreshToken: string }).refreshToken
    }
  }
  await Promise.all(tokens.map((_, slot) => worker(slot)))
  const elapsed = (performance.now() - started) / 1000
  agent.destroy()
  latencies.sort((a, b) => a - b)
  return {
    perSecond: latencies.length / elapsed, refreshes: latencies.length,
    p50: percentile(latencies, 0.5), p99: percentile(latencies, 0.99), errors, firstError,
  }
}
