/**
 * The smoke test of a running rekey service, as a client sees it: health ping, login, a
 * protected call, refresh, and a protected call with the refreshed token. Each step has its
 * own timeout; the first failure stops the run and is named. Tokens stay inside this module:
 * the result carries statuses, latencies and the kid of each token's header, never a token.
 */
import { parseHeader, splitToken } from '../../core/token.ts'

/** The steps, in order. */
export const SMOKE_STEPS = Object.freeze(['ping', 'login', 'me', 'refresh', 'me-after-refresh'] as const)

/** A step of the smoke test. */
export type SmokeStep = (typeof SMOKE_STEPS)[number]

/** Options of {@link runSmoke}. */
export interface SmokeOptions {
  /** The service's base URL, e.g. `https://auth.example.com`. */
  readonly url: string
  readonly email: string
  readonly password: string
  /** Timeout of each step, ms. Default 5000 (5 seconds). */
  readonly timeoutMs?: number
}

/** One step's outcome. */
export interface SmokeStepResult {
  readonly step: SmokeStep
  readonly ok: boolean
  /** The HTTP status, or `null` when no answer came (refused, timed out). */
  readonly status: number | null
  readonly ms: number
  /** The kid of the access token this step obtained or used. */
  readonly accessKid?: string | null
  /** The kid of the refresh token this step obtained. */
  readonly refreshKid?: string | null
  /** Why it failed: the service's error code, or the network error. Never a token. */
  readonly error?: string
}

/** The whole run. */
export interface SmokeResult {
  readonly ok: boolean
  readonly url: string
  /** The step that failed, or `null`. */
  readonly failedStep: SmokeStep | null
  readonly steps: readonly SmokeStepResult[]
}

/** The `kid` of a JWT's header, unverified: the smoke test reports which key signed, it does not judge. */
export function kidOf(token: unknown): string | null {
  if (typeof token !== 'string') return null
  try {
    return parseHeader(splitToken(token).header).kid ?? null
  } catch {
    return null
  }
}

interface Answer {
  readonly status: number | null
  readonly ms: number
  readonly body: Record<string, unknown> | null
  readonly error?: string
}

async function call(base: string, route: string, timeoutMs: number, init: { method?: string, body?: unknown, token?: string }): Promise<Answer> {
  const started = performance.now()
  const headers: Record<string, string> = {}
  if (init.body !== undefined) headers['content-type'] = 'application/json'
  if (init.token !== undefined) headers.authorization = `Bearer ${init.token}`
  try {
    const res = await fetch(new URL(route, base), {
      method: init.method ?? 'GET',
      headers,
      ...(init.body === undefined ? {} : { body: JSON.stringify(init.body) }),
      signal: AbortSignal.timeout(timeoutMs),
      redirect: 'error',
    })
    const text = await res.text()
    let body: Record<string, unknown> | null = null
    try {
      body = JSON.parse(text) as Record<string, unknown>
    } catch { /* not JSON: reported by status */ }
    return { status: res.status, ms: Math.round(performance.now() - started), body }
  } catch (err) {
    const e = err as Error & { cause?: { code?: string } }
    const reason = e.name === 'TimeoutError' ? `no answer within ${timeoutMs} ms` : (e.cause?.code ?? e.message)
    return { status: null, ms: Math.round(performance.now() - started), body: null, error: reason }
  }
}

/** The error a failed answer reports: the service's `error` code only (bodies are not echoed). */
function errorOf(answer: Answer, expected: number): string {
  if (answer.error !== undefined) return answer.error
  const code = typeof answer.body?.error === 'string' ? answer.body.error : 'unexpected answer'
  return `HTTP ${answer.status ?? '?'} (expected ${expected}): ${code}`
}

/** Runs the smoke test against `options.url`; see the module comment. Never throws for a failing service. */
export async function runSmoke(options: SmokeOptions): Promise<SmokeResult> {
  const timeoutMs = options.timeoutMs ?? 5000
  if (!Number.isSafeInteger(timeoutMs) || timeoutMs <= 0) throw new RangeError('timeoutMs must be a positive integer (milliseconds)')
  let base: URL
  try {
    base = new URL(options.url)
  } catch {
    throw new TypeError('url must be an http:// or https:// URL')
  }
  if (base.protocol !== 'http:' && base.protocol !== 'https:') throw new TypeError('url must be an http:// or https:// URL')
  // Routes resolve relative to the base, so a base path such as https://host/auth/ is kept.
  const root = base.href.endsWith('/') ? base.href : `${base.href}/`
  const steps: SmokeStepResult[] = []
  const done = (failed: SmokeStep | null): SmokeResult => ({ ok: failed === null, url: base.origin, failedStep: failed, steps })
  const step = (result: SmokeStepResult): boolean => {
    steps.push(result)
    return result.ok
  }

  const ping = await call(root, 'api/health/ping', timeoutMs, {})
  if (!step({ step: 'ping', ok: ping.status === 200, status: ping.status, ms: ping.ms, ...(ping.status === 200 ? {} : { error: errorOf(ping, 200) }) })) return done('ping')

  const login = await call(root, 'api/auth/login', timeoutMs, { method: 'POST', body: { email: options.email, password: options.password } })
  const access1 = login.body?.accessToken
  const refresh1 = login.body?.refreshToken
  const loginOk = login.status === 200 && typeof access1 === 'string' && typeof refresh1 === 'string'
  if (!step({ step: 'login', ok: loginOk, status: login.status, ms: login.ms, accessKid: kidOf(access1), refreshKid: kidOf(refresh1), ...(loginOk ? {} : { error: errorOf(login, 200) }) })) return done('login')

  const me1 = await call(root, 'api/auth/me', timeoutMs, { token: access1 as string })
  if (!step({ step: 'me', ok: me1.status === 200, status: me1.status, ms: me1.ms, accessKid: kidOf(access1), ...(me1.status === 200 ? {} : { error: errorOf(me1, 200) }) })) return done('me')

  const refresh = await call(root, 'api/auth/refresh', timeoutMs, { method: 'POST', body: { refreshToken: refresh1 } })
  const access2 = refresh.body?.accessToken
  const refresh2 = refresh.body?.refreshToken
  const refreshOk = refresh.status === 200 && typeof access2 === 'string' && typeof refresh2 === 'string'
  if (!step({ step: 'refresh', ok: refreshOk, status: refresh.status, ms: refresh.ms, accessKid: kidOf(access2), refreshKid: kidOf(refresh2), ...(refreshOk ? {} : { error: errorOf(refresh, 200) }) })) return done('refresh')

  const me2 = await call(root, 'api/auth/me', timeoutMs, { token: access2 as string })
  if (!step({ step: 'me-after-refresh', ok: me2.status === 200, status: me2.status, ms: me2.ms, accessKid: kidOf(access2), ...(me2.status === 200 ? {} : { error: errorOf(me2, 200) }) })) return done('me-after-refresh')

  // Best effort: end the session the smoke test opened, so runs do not pile up sessions.
  await call(root, 'api/auth/logout', timeoutMs, { method: 'POST', body: { refreshToken: refresh2 } })
  return done(null)
}

/** The run as lines for people: step, status, latency, kids. */
export function formatSmoke(result: SmokeResult): string {
  const lines = [`smoke ${result.url}`]
  for (const s of result.steps) {
    const kids = [
      s.accessKid === undefined ? '' : `access kid ${s.accessKid ?? '-'}`,
      s.refreshKid === undefined ? '' : `refresh kid ${s.refreshKid ?? '-'}`,
    ].filter((k) => k !== '').join(', ')
    lines.push(`  ${s.ok ? 'ok  ' : 'FAIL'} ${s.step.padEnd(17)} ${String(s.status ?? '---').padEnd(4)} ${String(s.ms).padStart(5)} ms${kids === '' ? '' : `  ${kids}`}${s.error === undefined ? '' : `  ${s.error}`}`)
  }
  lines.push(result.ok ? 'smoke test passed' : `smoke test FAILED at ${result.failedStep ?? '?'}`)
  return `${lines.join('\n')}\n`
}
