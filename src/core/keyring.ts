import { inspect } from 'node:util'
import { checkClaims, compileClaimRules, type ClaimRules, type Claims, type VerifyOptions } from './claims.ts'
import { durationOption, type Duration } from './duration.ts'
import { RekeyError } from './errors.ts'
import { createKeyEntry, KeyProblem, weakSecretProblem, type KeyEntry, type KeyInfo, type KeyInput } from './key.ts'
import { readEnvKeys, type Env, type KeyPurpose } from './env.ts'
import { verifies, type KeyState } from './states.ts'
import { isBase64url, parseHeader, parsePayload, splitToken, type HeaderInfo, type TokenParts } from './token.ts'
import { displayUrl, RemoteJwks, type RemoteJwksStatus } from './remote-jwks.ts'
import { startUsageReport, UsageCounts, usageSettingsOf, type UsageOptions, type UsageReport } from './usage-counts.ts'
import { VerifiedTokens } from './verified-tokens.ts'

/** Options of `keyring.sign`. Durations are seconds or text such as `15m`. */
export interface SignOptions {
  /** Lifetime from now. Default: the keyring's `expiresIn` (900 s for access keys). */
  expiresIn?: Duration
  audience?: string | string[]
  issuer?: string
  subject?: string
  /** `nbf` as a delay from now. */
  notBefore?: Duration
  jwtId?: string
}

/** What `keyring.verify` returns: the claims, and which key verified them. */
export interface VerifyResult {
  payload: Claims
  kid: string
  state: KeyState
}

/** Options of a keyring as a whole. */
export interface KeyringOptions {
  /** Default token lifetime for `sign`. Default 900 (15 minutes). */
  expiresIn?: Duration
  /** Accept shared secrets under 32 bytes (never in production). Default false. */
  allowWeakSecrets?: boolean
  /**
   * Report per-kid verification counts to a store (`rekey status`, finalize's evidence):
   * `{ store: SQLITE_PATH_OR_POSTGRES_URL, name }`. Counted in memory, written every 10 s off
   * the verify path; a store outage never fails a verification. Call `keyring.close()` on
   * shutdown to write the last counts.
   */
  usage?: UsageOptions
}

/** Options of {@link Keyring.fromJwks}: refetch rules, default verify options, usage. */
export interface JwksKeyringOptions extends VerifyOptions {
  /** The least time between two refetches for an unknown kid. Default 30 (seconds). */
  cooldown?: Duration
  /** How long one fetch may take. Default 5 (seconds). */
  timeout?: Duration
  /** As {@link KeyringOptions.usage}. */
  usage?: UsageOptions
  /** Called with each failed refresh (the last good key set keeps serving) and each refused kid. Must not throw. */
  onError?: (err: RekeyError) => void
}

const VERIFY_OPTION_NAMES: readonly string[] = ['audience', 'issuer', 'subject', 'clockTolerance', 'maxTokenAge', 'requiredClaims', 'currentDate']

/** Set only by `fromJwks`: a keyring of public keys, none of which signs. */
const VERIFY_ONLY = Symbol('rekey.verifyOnly')
interface InternalOptions extends KeyringOptions {
  [VERIFY_ONLY]?: boolean
}

/** Keys as verify reads them; replaced whole, never edited, so a swap is atomic. */
interface KeySet {
  readonly byKid: ReadonlyMap<string, KeyEntry>
  /** Undefined only in a verify-only (remote) keyring. */
  readonly signer: KeyEntry | undefined
  /** Keys that verify, signer first: the order tried for tokens without `kid`. */
  readonly kidless: readonly KeyEntry[]
  /** Keys that no longer verify, to name the reason when a kid-less token fails. */
  readonly cut: readonly KeyEntry[]
  /** Header segment → parsed header, pre-filled with the headers rekey signs. */
  readonly headers: Map<string, HeaderInfo>
  /** Tokens this set verified, for {@link Keyring.cachingVerifier}; a new set starts empty. */
  readonly verified: VerifiedTokens
}

const HEADER_CACHE_LIMIT = 256

function buildKeySet(inputs: readonly KeyInput[], options: InternalOptions): KeySet {
  const verifyOnly = options[VERIFY_ONLY] === true
  if (!Array.isArray(inputs)) throw new TypeError('keys must be an array')
  const problems: string[] = []
  let allWeak = true
  const entries: KeyEntry[] = []
  inputs.forEach((input, i) => {
    const label = input?.label ?? `key ${input?.kid ?? `#${i + 1}`}`
    try {
      const entry = createKeyEntry(input, label)
      const weak = weakSecretProblem(label, entry)
      if (weak !== undefined && options.allowWeakSecrets !== true) throw new KeyProblem(weak, true)
      if (weak !== undefined) {
        process.emitWarning(`${label}: a weak secret (${entry.secretBytes} bytes) is accepted because REKEY_ALLOW_WEAK_SECRETS is set; replace it with \`rekey gen\``, { code: 'REKEY_WEAK_SECRET' })
      }
      entries.push(entry)
    } catch (err) {
      if (!(err instanceof KeyProblem)) throw err
      if (!err.weak) allWeak = false
      problems.push(err.message)
    }
  })
  const byKid = new Map<string, KeyEntry>()
  for (const entry of entries) {
    if (byKid.has(entry.kid)) {
      allWeak = false
      problems.push(`kid ${entry.kid} is used by two keys`)
    }
    byKid.set(entry.kid, entry)
  }
  const currentCount = inputs.filter((input) => input?.state === 'current').length
  if (currentCount !== 1 && !verifyOnly) {
    allWeak = false
    problems.push(currentCount === 0 ? 'no key is current: exactly one key must sign' : `${currentCount} keys are current: exactly one key must sign`)
  }
  const current = entries.filter((e) => e.state === 'current')
  if (current.length === 1 && current[0]?.sign === undefined && !verifyOnly) {
    allWeak = false
    problems.push(`key ${current[0]?.kid}: the current key has no private material to sign with`)
  }
  if (problems.length > 0) {
    const code = allWeak ? 'ERR_WEAK_SECRET' : 'ERR_CONFIG'
    throw new RekeyError(code, `Invalid keyring: ${problems.join('; ')}`, { problems })
  }
  const signer = verifyOnly ? undefined : current[0] as KeyEntry
  const order: KeyState[] = ['current', 'previous', 'next']
  const kidless = order.flatMap((state) => entries.filter((e) => e.state === state))
  const headers = new Map<string, HeaderInfo>()
  for (const entry of entries) headers.set(entry.header, { alg: entry.alg, kid: entry.kid })
  return { byKid, signer, kidless, cut: entries.filter((e) => !verifies(e.state)), headers, verified: new VerifiedTokens() }
}

function keyStateError(entry: KeyEntry): RekeyError {
  return entry.state === 'revoked'
    ? new RekeyError('ERR_KEY_REVOKED', `The key ${entry.kid} was revoked`, { kid: entry.kid })
    : new RekeyError('ERR_KEY_RETIRED', `The key ${entry.kid} is retired`, { kid: entry.kid })
}

/** A failed signature check: malformed when a segment is not base64url, else a bad signature. */
function signatureError(parts: TokenParts, kid?: string): RekeyError {
  const options = kid === undefined ? {} : { kid }
  if (!isBase64url(parts.payload) || !isBase64url(parts.signature)) {
    return new RekeyError('ERR_TOKEN_MALFORMED', 'The token is not a compact JWS', options)
  }
  return new RekeyError('ERR_TOKEN_SIGNATURE', 'The token signature is invalid', options)
}

/** The same failure, naming the key it is about (claims are checked after the key is known). */
function withKid(err: unknown, kid: string): unknown {
  if (!(err instanceof RekeyError) || err.kid !== undefined) return err
  return new RekeyError(err.code, err.message, {
    kid, ...(err.claim === undefined ? {} : { claim: err.claim }), ...(err.cause === undefined ? {} : { cause: err.cause }),
  })
}

/**
 * A set of kid-addressed keys: exactly one signs (`current`); `next`, `current` and
 * `previous` verify. The key set can be replaced while requests are verifying
 * ({@link Keyring.update}); each verification sees one whole set.
 */
export class Keyring {
  #keys: KeySet
  #options: Readonly<InternalOptions>
  #expiresIn: number
  #purpose: KeyPurpose | undefined
  /** Per-kid counts when `usage` is set; null otherwise (one null check on the verify path). */
  #counts: UsageCounts | null = null
  #report: UsageReport | null = null
  #remote: RemoteJwks | null = null
  /** Verify options a remote keyring applies by default. */
  #defaults: VerifyOptions | undefined

  constructor(keys: readonly KeyInput[], options: KeyringOptions = {}) {
    this.#options = Object.freeze({ ...options })
    this.#expiresIn = durationOption('expiresIn', options.expiresIn ?? 900)
    const usage = options.usage === undefined ? undefined : usageSettingsOf(options.usage)
    this.#keys = buildKeySet(keys, this.#options)
    if (usage !== undefined) {
      this.#counts = new UsageCounts()
      this.#report = startUsageReport(this.#counts, usage)
    }
  }

  /**
   * A verify-only keyring over a remote JWK Set (`GET /.well-known/jwks.json` of `rekey serve`,
   * or any issuer's). Resolves after the first fetch; rejects with `ERR_JWKS_UNAVAILABLE` when
   * the host does not answer, `ERR_CONFIG` when it answers no JWK Set. Then: the set is refreshed
   * when its `Cache-Control: max-age` runs out (default 10 minutes); a token naming an unknown
   * kid triggers at most one refetch per `cooldown` (default 30 s; one request in flight); the
   * last good set keeps serving while the host is down (`keyring.remote.failures`, `stale`);
   * a kid whose key material changes is refused. `sign` throws: the keyring holds no private key.
   */
  static async fromJwks(url: string | URL, options: JwksKeyringOptions = {}): Promise<Keyring> {
    let parsed: URL
    try {
      parsed = new URL(url)
    } catch {
      throw new TypeError('fromJwks: url must be an http:// or https:// URL')
    }
    if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') throw new TypeError('fromJwks: url must be an http:// or https:// URL')
    if (typeof options !== 'object' || options === null) throw new TypeError('fromJwks: options must be an object')
    const { cooldown, timeout, usage, onError, ...defaults } = options
    // A misspelt verify default (`audiance`) would silently drop a check: unknown names are refused.
    const unknown = Object.keys(defaults).filter((name) => !VERIFY_OPTION_NAMES.includes(name))
    if (unknown.length > 0) throw new TypeError(`fromJwks: unknown option ${unknown.map((n) => `"${n}"`).join(', ')}`)
    if (onError !== undefined && typeof onError !== 'function') throw new TypeError('fromJwks: onError must be a function')
    const cooldownMs = durationOption('cooldown', cooldown ?? 30) * 1000
    const timeoutMs = Math.max(1, durationOption('timeout', timeout ?? 5)) * 1000
    compileClaimRules(defaults) // misuse of the verify defaults throws now, not at the first request
    let keyring: Keyring | undefined
    const remote = new RemoteJwks({
      url: parsed, cooldownMs, timeoutMs,
      onKeys: (inputs) => keyring?.update(inputs),
      ...(onError === undefined ? {} : { onError }),
    })
    const inputs = await remote.load()
    try {
      keyring = new Keyring(inputs, { [VERIFY_ONLY]: true, ...(usage === undefined ? {} : { usage }) } as InternalOptions)
    } catch (err) {
      remote.close()
      throw err
    }
    if (inputs.length === 0) process.emitWarning(`${displayUrl(parsed)} publishes no key rekey can verify with (yet): every token fails until it does`, { code: 'REKEY_JWKS_EMPTY' })
    keyring.#remote = remote
    keyring.#defaults = Object.keys(defaults).length === 0 ? undefined : Object.freeze({ ...defaults })
    return keyring
  }

  /** For a remote keyring: what its JWKS source has done (fetches, failures, stale, refused kids); `null` for a local one. */
  get remote(): RemoteJwksStatus | null {
    return this.#remote?.status() ?? null
  }

  /** True for a keyring that only verifies (`fromJwks`). */
  get verifyOnly(): boolean {
    return this.#keys.signer === undefined
  }

  /**
   * For a remote keyring, after `ERR_KEY_UNKNOWN`: waits for the refetch that kid triggered
   * (at most one per cooldown, shared by concurrent callers) and resolves true when the key
   * set changed, so the token is worth verifying once more. Resolves false at once for a
   * local keyring or while the cooldown runs. Never rejects.
   */
  refreshForUnknownKid(): Promise<boolean> {
    return this.#remote?.unknownKid() ?? Promise.resolve(false)
  }

  /** Stops the usage report (writing the last counts) and the JWKS refresh timer. */
  async close(): Promise<void> {
    this.#remote?.close()
    const report = this.#report
    this.#report = null
    await report?.close()
  }

  /**
   * Builds a keyring from the environment conventions (see `docs/keyring.md`). Every
   * problem is reported at once in one `ERR_CONFIG` (or `ERR_WEAK_SECRET` when weak
   * secrets are the only problem); no value is ever echoed.
   */
  static fromEnv(env: Env = process.env, options: { purpose?: KeyPurpose, usage?: UsageOptions } = {}): Keyring {
    const purpose = options.purpose ?? 'access'
    const usage = options.usage === undefined ? undefined : usageSettingsOf(options.usage)
    if (purpose !== 'access' && purpose !== 'refresh') throw new TypeError('purpose must be "access" or "refresh"')
    const read = readEnvKeys(env, purpose)
    const problems = [...read.problems]
    let weakOnly = problems.length === 0
    let keyring: Keyring | undefined
    for (const input of read.extra) {
      try {
        const weak = weakSecretProblem(input.label ?? 'key', createKeyEntry(input, input.label ?? 'key'))
        if (weak !== undefined && !read.allowWeakSecrets) problems.push(weak)
      } catch (err) {
        if (!(err instanceof KeyProblem)) throw err
        problems.push(err.message)
      }
    }
    if (read.keys.length > 0) {
      try {
        keyring = new Keyring(read.keys, { expiresIn: read.expiresIn, allowWeakSecrets: read.allowWeakSecrets })
      } catch (err) {
        if (!(err instanceof RekeyError)) throw err
        problems.push(...err.problems)
        weakOnly &&= err.code === 'ERR_WEAK_SECRET'
      }
    }
    if (keyring === undefined || problems.length > 0) {
      const code = weakOnly && problems.length > 0 ? 'ERR_WEAK_SECRET' : 'ERR_CONFIG'
      throw new RekeyError(code, `Invalid ${purpose} key configuration: ${problems.join('; ')}`, { problems })
    }
    // Only once every check passed: a refused configuration opens no store and reports nothing.
    if (usage !== undefined) keyring.#startUsage(options.usage as UsageOptions)
    if (read.source === 'JWT_ACCESS_SECRET' || read.source === 'JWT_REFRESH_SECRET') keyring.#purpose = purpose
    return keyring
  }

  #startUsage(usage: UsageOptions): void {
    this.#counts = new UsageCounts()
    this.#report = startUsageReport(this.#counts, usageSettingsOf(usage))
  }

  /** Builds a keyring from key inputs (secrets or JWKs with states). */
  static fromKeys(keys: readonly KeyInput[], options: KeyringOptions = {}): Keyring {
    return new Keyring(keys, options)
  }

  /** Replaces every key at once, as after a rotation. Throws, changing nothing, when the new set is invalid. */
  update(keys: readonly KeyInput[]): void {
    this.#keys = buildKeySet(keys, this.#options)
  }

  /**
   * `access` or `refresh` when the keys came from purpose-specific variables
   * (`JWT_ACCESS_SECRET`, `JWT_REFRESH_SECRET`); `undefined` for generic ones (`JWT_SECRET`,
   * `JWT_KEYS`) and keyrings built from keys. The middleware then checks `token_use` by default.
   */
  get purpose(): KeyPurpose | undefined {
    return this.#purpose
  }

  /** The kid of the key that signs; the empty string for a verify-only keyring. */
  get currentKid(): string {
    return this.#keys.signer?.kid ?? ''
  }

  /** The default lifetime of the tokens this keyring signs, in seconds. */
  get expiresIn(): number {
    return this.#expiresIn
  }

  /** Signs a claims set with the current key. Sets `iat`, and `exp` unless the claims carry one. */
  sign(claims: object, options: SignOptions = {}): string {
    if (typeof claims !== 'object' || claims === null || Array.isArray(claims)) throw new TypeError('claims must be an object')
    const payload: Record<string, unknown> = { ...claims }
    const now = Math.floor(Date.now() / 1000)
    if (payload.iat === undefined) payload.iat = now
    else if (!Number.isFinite(payload.iat)) throw new TypeError('the iat claim must be a number') // NaN would be signed as null
    if (payload.exp !== undefined) {
      if (options.expiresIn !== undefined) throw new TypeError('give either an exp claim or expiresIn, not both')
      if (!Number.isFinite(payload.exp)) throw new TypeError('the exp claim must be a number')
    } else {
      payload.exp = now + (options.expiresIn === undefined ? this.#expiresIn : durationOption('expiresIn', options.expiresIn))
    }
    if (options.notBefore !== undefined) payload.nbf = now + durationOption('notBefore', options.notBefore)
    if (options.audience !== undefined) payload.aud = options.audience
    if (options.issuer !== undefined) payload.iss = options.issuer
    if (options.subject !== undefined) payload.sub = options.subject
    if (options.jwtId !== undefined) payload.jti = options.jwtId
    const signer = this.#keys.signer
    if (signer === undefined) throw new TypeError('this keyring only verifies (Keyring.fromJwks): it holds no private key to sign with')
    const input = `${signer.header}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}`
    return `${input}.${(signer.sign as (s: string) => string)(input)}`
  }

  /**
   * Verifies a token: signature with the key its `kid` names (or, without a `kid`, the
   * signer then the verify-only keys), then the claims. Throws a {@link RekeyError}.
   */
  verify(token: string, options?: VerifyOptions): VerifyResult {
    return this.verifyWith(token, compileClaimRules(this.#withDefaults(options)))
  }

  #withDefaults(options: VerifyOptions | undefined): VerifyOptions | undefined {
    if (this.#defaults === undefined) return options
    return options === undefined ? this.#defaults : { ...this.#defaults, ...options }
  }

  /**
   * Returns a verify function with its options checked once, for hot paths such as
   * middleware.
   */
  verifier(options?: VerifyOptions): (token: string) => VerifyResult {
    const rules = compileClaimRules(this.#withDefaults(options))
    return (token) => this.verifyWith(token, rules)
  }

  /**
   * As {@link verifier}, for a service that sees the same tokens again and again: a token this
   * key set already verified skips the signature check and the parse (see
   * `verified-tokens.ts`); its claims are checked again every time, and any update of the
   * keyring forgets every token. The result's claims are frozen and shared between calls.
   */
  cachingVerifier(options?: VerifyOptions): (token: string) => VerifyResult {
    const rules = compileClaimRules(this.#withDefaults(options))
    return (token) => {
      const keys = this.#keys
      const known = typeof token === 'string' ? keys.verified.get(token) : undefined
      if (known === undefined) return keys.verified.add(token, this.verifyWith(token, rules))
      try {
        checkClaims(known.payload, rules)
      } catch (err) {
        keys.verified.delete(token)
        throw withKid(err, known.kid)
      }
      if (this.#counts !== null) this.#counts.add(known.kid)
      return known
    }
  }

  private verifyWith(token: string, rules: ClaimRules): VerifyResult {
    if (typeof token !== 'string') throw new TypeError('token must be a string')
    const keys = this.#keys
    const parts = splitToken(token)
    let header = keys.headers.get(parts.header)
    if (header === undefined) {
      header = parseHeader(parts.header)
      if (keys.headers.size >= HEADER_CACHE_LIMIT + keys.byKid.size) keys.headers.clear()
      keys.headers.set(parts.header, header)
    }
    let entry: KeyEntry | undefined
    if (header.kid !== undefined) {
      entry = keys.byKid.get(header.kid)
      if (entry === undefined) throw this.unknownKey(header.kid)
      if (!verifies(entry.state)) throw this.refusedKey(entry)
      // The algorithm is the key's, never the token's: a mismatch is refused, not obeyed.
      if (header.alg !== entry.alg) throw new RekeyError('ERR_TOKEN_ALG', 'The token algorithm does not match its key', { kid: entry.kid })
      if (!entry.verify(parts.signingInput, parts.signature)) throw signatureError(parts, entry.kid)
    } else {
      entry = this.findKidless(keys, header.alg, parts)
    }
    let payload: Claims
    try {
      payload = parsePayload(parts.payload) as Claims
      checkClaims(payload, rules)
    } catch (err) {
      // Callers count failures per kid; naming it here spares them decoding the header again.
      throw withKid(err, entry.kid)
    }
    if (this.#counts !== null) this.#counts.add(entry.kid)
    return { payload, kid: entry.kid, state: entry.state }
  }

  private unknownKey(kid: string): RekeyError {
    if (this.#remote !== null) {
      if (this.#remote.isRefused(kid)) return new RekeyError('ERR_KEY_REVOKED', `The key ${kid} changed its key material at the JWKS: it is refused`, { kid })
      // A new key may have been published since the last fetch: refetch (cooldown, single flight).
      void this.#remote.unknownKid()
    }
    // No kid: it is the token's own claim, not a key of this keyring (counting it per kid would let anyone add labels).
    return new RekeyError('ERR_KEY_UNKNOWN', 'The token names an unknown key')
  }

  private refusedKey(entry: KeyEntry): RekeyError {
    if (this.#remote?.isRefused(entry.kid) === true) return new RekeyError('ERR_KEY_REVOKED', `The key ${entry.kid} changed its key material at the JWKS: it is refused`, { kid: entry.kid })
    return keyStateError(entry)
  }

  private findKidless(keys: KeySet, alg: string, parts: TokenParts): KeyEntry {
    const { signingInput: input, signature } = parts
    let algSeen = false
    for (const entry of keys.kidless) {
      if (entry.alg !== alg) continue
      algSeen = true
      if (entry.verify(input, signature)) return entry
    }
    // Only after every live key failed: name a cut key when it is the one that signed.
    for (const entry of keys.cut) {
      if (entry.alg === alg && entry.verify(input, signature)) throw keyStateError(entry)
    }
    if (!algSeen) throw new RekeyError('ERR_TOKEN_ALG', 'No key of the keyring uses the token algorithm')
    throw signatureError(parts)
  }

  /** Every key, with its state and dates: never key material. */
  list(): KeyInfo[] {
    return [...this.#keys.byKid.values()].map((e) => ({ ...e.info }))
  }

  /** The public JWK Set of the asymmetric keys that verify (next, current, previous). */
  jwks(): { keys: Record<string, unknown>[] } {
    const keys: Record<string, unknown>[] = []
    for (const entry of this.#keys.kidless) {
      if (entry.publicJwk !== undefined) keys.push({ ...entry.publicJwk })
    }
    return { keys }
  }

  toJSON(): { currentKid: string, keys: KeyInfo[] } {
    return { currentKid: this.currentKid, keys: this.list() }
  }

  toString(): string {
    return `Keyring(current=${this.currentKid}, keys=${this.#keys.byKid.size})`
  }

  [inspect.custom](): string {
    return `Keyring ${inspect(this.toJSON(), { depth: 3 })}`
  }
}
