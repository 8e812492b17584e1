/**
 * The key source of a remote keyring (`Keyring.fromJwks`): a JWK Set fetched over HTTP(S),
 * kept kid-addressed, refreshed when its `Cache-Control: max-age` runs out, refetched for an
 * unknown kid at most once per cooldown (one request in flight at a time), and kept as it was
 * while the host is down. A kid whose key material changes under the same kid is refused for
 * the life of the keyring: rekey derives kids from the key, so a change means a forged or
 * broken JWKS, never a rotation.
 *
 * The only I/O in core: the global `fetch`, no project import outside core.
 */
import type { JsonWebKey } from 'node:crypto'
import { RekeyError } from './errors.ts'
import { createKeyEntry, KeyProblem, type KeyInput } from './key.ts'

/** Default freshness of a JWKS answered without `Cache-Control: max-age`, ms (10 minutes, as jose). */
export const DEFAULT_JWKS_FRESH_MS = 600_000
/** The longest `max-age` honoured, ms (one day). */
const MAX_FRESH_MS = 86_400_000
/** A JWKS bigger than this is refused (hostile or wrong URL). */
const MAX_JWKS_BYTES = 1_048_576
const MAX_KEYS = 100

/** What the remote source has done, for metrics and health checks. Never key material. */
export interface RemoteJwksStatus {
  /** The JWKS URL without credentials or query. */
  readonly url: string
  /** Fetch attempts so far (the first one included). */
  readonly fetches: number
  /** Failed fetches so far: each one served the last good key set. */
  readonly failures: number
  /** True while the last fetch failed and the last good key set is being served. */
  readonly stale: boolean
  readonly lastSuccessAt: string | null
  /** When the key set is refreshed next (from `Cache-Control: max-age`). */
  readonly freshUntil: string | null
  /** The last failure, in words (no URL credentials, no response body). */
  readonly lastError: string | null
  /** Kids refused because their key material changed under the same kid. */
  readonly refusedKids: readonly string[]
}

/** What {@link RemoteJwks} needs. */
export interface RemoteJwksOptions {
  readonly url: URL
  readonly cooldownMs: number
  readonly timeoutMs: number
  /** Called with the new key inputs after every fetch that changed them. */
  readonly onKeys: (inputs: KeyInput[]) => void
  /** Called with each failed refresh (the last good set keeps serving). Must not throw. */
  readonly onError?: (err: RekeyError) => void
}

/** The URL as messages show it: no user, password or query (they may carry credentials). */
export function displayUrl(url: URL): string {
  return `${url.origin}${url.pathname}`
}

/** `max-age` of a Cache-Control header, ms; 0 for `no-store`/`no-cache`; undefined when absent. */
export function maxAgeOf(header: string | null): number | undefined {
  if (header === null) return undefined
  const directives = header.toLowerCase().split(',').map((d) => d.trim())
  if (directives.includes('no-store') || directives.includes('no-cache')) return 0
  for (const d of directives) {
    const m = /^max-age\s*=\s*"?(\d{1,10})"?$/.exec(d)
    if (m !== null) return Math.min(Number(m[1]) * 1000, MAX_FRESH_MS)
  }
  return undefined
}

/** The public material of a JWK, to notice a kid whose key changed. */
function materialOf(jwk: Record<string, unknown>): string {
  return JSON.stringify([jwk.kty, jwk.crv, jwk.x, jwk.y, jwk.n, jwk.e, jwk.alg])
}

/** Parses a JWK Set into verify-only key inputs; skips keys rekey cannot verify with. */
function parseJwks(text: string, where: string): { inputs: KeyInput[], material: Map<string, string> } {
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch {
    throw new RekeyError('ERR_CONFIG', `${where} did not answer a JWK Set (not JSON)`)
  }
  const keys = (parsed as { keys?: unknown } | null)?.keys
  if (!Array.isArray(keys)) throw new RekeyError('ERR_CONFIG', `${where} did not answer a JWK Set (no "keys" array)`)
  if (keys.length > MAX_KEYS) throw new RekeyError('ERR_CONFIG', `${where} answered ${keys.length} keys; at most ${MAX_KEYS} are accepted`)
  const inputs: KeyInput[] = []
  const material = new Map<string, string>()
  for (const key of keys) {
    if (typeof key !== 'object' || key === null) continue
    const jwk = key as Record<string, unknown>
    // Encryption keys, shared secrets and private parts have no place in a verifier's key set.
    if (jwk.use !== undefined && jwk.use !== 'sig') continue
    if (jwk.kty === 'oct' || jwk.d !== undefined || typeof jwk.kid !== 'string') continue
    if (material.has(jwk.kid)) throw new RekeyError('ERR_CONFIG', `${where} publishes kid ${jwk.kid.slice(0, 128)} twice`)
    const { kty, crv, x, y, n, e, kid, alg } = jwk
    const pub = Object.fromEntries(Object.entries({ kty, crv, x, y, n, e, kid, alg }).filter(([, v]) => v !== undefined)) as JsonWebKey
    const input: KeyInput = { jwk: pub, state: 'current', label: `JWKS key ${kid.slice(0, 128)}` }
    try {
      createKeyEntry(input, input.label as string)
    } catch (err) {
      if (err instanceof KeyProblem) continue
      throw err
    }
    inputs.push(input)
    material.set(kid, materialOf(jwk))
  }
  return { inputs, material }
}

/**
 * The body as text, read no further than MAX_JWKS_BYTES: a chunked answer declares no length,
 * and a wrong URL (a stream, a large file) must not be read into memory whole.
 */
async function readCapped(response: Response, where: string): Promise<string> {
  if (response.body === null) return ''
  const reader = response.body.getReader()
  const chunks: Uint8Array[] = []
  let bytes = 0
  for (;;) {
    const { done, value } = await reader.read()
    if (done) break
    bytes += value.byteLength
    if (bytes > MAX_JWKS_BYTES) {
      await reader.cancel().catch(() => {})
      throw new RekeyError('ERR_CONFIG', `${where} answered more than ${MAX_JWKS_BYTES} bytes`)
    }
    chunks.push(value)
  }
  return new TextDecoder().decode(Buffer.concat(chunks)) // as response.text(): UTF-8, a BOM dropped
}

/** A JWKS over HTTP(S), with the refresh rules above. */
export class RemoteJwks {
  readonly #options: RemoteJwksOptions
  readonly #where: string
  /** kid → public material, of every key ever seen (a kid that comes back must be the same key). */
  readonly #seen = new Map<string, string>()
  readonly #refused = new Set<string>()
  #refusedInputs: KeyInput[] = []
  #inflight: Promise<boolean> | null = null
  #lastAttempt = Number.NEGATIVE_INFINITY
  #timer: NodeJS.Timeout | null = null
  #closed = false
  #fetches = 0
  #failures = 0
  #stale = false
  #lastSuccessAt: number | null = null
  #freshUntil: number | null = null
  #lastError: string | null = null

  constructor(options: RemoteJwksOptions) {
    this.#options = options
    this.#where = displayUrl(options.url)
  }

  /** True for a kid refused because its key material changed. */
  isRefused(kid: string): boolean {
    return this.#refused.has(kid)
  }

  status(): RemoteJwksStatus {
    const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString())
    return Object.freeze({
      url: this.#where, fetches: this.#fetches, failures: this.#failures, stale: this.#stale,
      lastSuccessAt: iso(this.#lastSuccessAt), freshUntil: iso(this.#freshUntil), lastError: this.#lastError,
      refusedKids: Object.freeze([...this.#refused]),
    })
  }

  /** The first fetch: rejects (ERR_JWKS_UNAVAILABLE or ERR_CONFIG) instead of serving nothing. */
  async load(): Promise<KeyInput[]> {
    const { inputs, freshMs } = await this.#fetch()
    this.#schedule(freshMs)
    return inputs
  }

  /** An unknown kid: refetch unless one is in flight (then share it) or the cooldown is running. */
  unknownKid(): Promise<boolean> {
    if (this.#inflight !== null) return this.#inflight
    if (this.#closed || Date.now() - this.#lastAttempt < this.#options.cooldownMs) return Promise.resolve(false)
    return this.refresh()
  }

  /** Refetches now (single flight). Resolves true when the key set changed; never rejects. */
  refresh(): Promise<boolean> {
    this.#inflight ??= (async () => {
      try {
        const { inputs, freshMs, changed } = await this.#fetch()
        this.#schedule(freshMs)
        if (changed) this.#options.onKeys(inputs)
        return changed
      } catch (err) {
        const error = err instanceof RekeyError ? err : new RekeyError('ERR_JWKS_UNAVAILABLE', `${this.#where} could not be fetched`)
        this.#failures++
        this.#stale = true
        this.#lastError = error.message
        this.#schedule(this.#options.cooldownMs)
        try { this.#options.onError?.(error) } catch { /* a listener must not break the refresh */ }
        return false
      } finally {
        this.#inflight = null
      }
    })()
    return this.#inflight
  }

  /** Stops the refresh timer. */
  close(): void {
    this.#closed = true
    if (this.#timer !== null) clearTimeout(this.#timer)
    this.#timer = null
  }

  #schedule(freshMs: number): void {
    if (this.#closed) return
    if (this.#timer !== null) clearTimeout(this.#timer)
    // Never more often than the cooldown, whatever max-age says (max-age=0 must not hammer the host).
    const delay = Math.max(freshMs, this.#options.cooldownMs)
    this.#freshUntil = Date.now() + delay
    this.#timer = setTimeout(() => { void this.refresh() }, delay)
    this.#timer.unref()
  }

  #lastInputs: KeyInput[] = []

  async #fetch(): Promise<{ inputs: KeyInput[], freshMs: number, changed: boolean }> {
    this.#fetches++
    this.#lastAttempt = Date.now()
    let response: Response
    let text: string
    try {
      response = await fetch(this.#options.url, { headers: { accept: 'application/jwk-set+json, application/json' }, redirect: 'error', signal: AbortSignal.timeout(this.#options.timeoutMs) })
      if (response.status !== 200) {
        await response.body?.cancel().catch(() => {})
        throw new RekeyError('ERR_JWKS_UNAVAILABLE', `${this.#where} answered HTTP ${response.status}`)
      }
      const length = Number(response.headers.get('content-length') ?? '0')
      if (length > MAX_JWKS_BYTES) {
        await response.body?.cancel().catch(() => {})
        throw new RekeyError('ERR_CONFIG', `${this.#where} answered more than ${MAX_JWKS_BYTES} bytes`)
      }
      text = await readCapped(response, this.#where)
    } catch (err) {
      if (err instanceof RekeyError) throw err
      const why = (err as Error)?.name === 'TimeoutError' ? `did not answer within ${this.#options.timeoutMs} ms` : 'could not be reached'
      throw new RekeyError('ERR_JWKS_UNAVAILABLE', `${this.#where} ${why}`)
    }
    const { inputs, material } = parseJwks(text, this.#where)
    let changed = false
    const usable: KeyInput[] = []
    for (const input of inputs) {
      const kid = input.jwk?.kid as string
      const known = this.#seen.get(kid)
      if (known !== undefined && known !== material.get(kid)) {
        if (!this.#refused.has(kid)) {
          this.#refused.add(kid)
          // The kid keeps the material first seen, marked revoked: its tokens are refused by name.
          const first = this.#lastInputs.find((i) => i.jwk?.kid === kid)
          if (first !== undefined) this.#refusedInputs.push({ ...first, state: 'revoked' })
          changed = true
          try { this.#options.onError?.(new RekeyError('ERR_KEY_REVOKED', `${this.#where} changed the key material of kid ${kid}: that kid is refused`)) } catch { /* ignored */ }
        }
        continue
      }
      if (this.#refused.has(kid)) continue
      if (known === undefined) {
        this.#seen.set(kid, material.get(kid) as string)
        changed = true
      }
      usable.push(input)
    }
    if (usable.length !== this.#lastInputs.length) changed = true
    this.#lastInputs = usable
    this.#stale = false
    this.#lastError = null
    this.#lastSuccessAt = Date.now()
    return { inputs: [...usable, ...this.#refusedInputs], freshMs: maxAgeOf(response.headers.get('cache-control')) ?? DEFAULT_JWKS_FRESH_MS, changed }
  }
}
