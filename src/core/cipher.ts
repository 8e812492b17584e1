/**
 * The field cipher of `rekey/crypt`: AES-256-GCM with a random 96-bit nonce per value, in a
 * self-describing text format that names its key:
 *
 *   rk1.<kid>.<nonce>.<ciphertext+tag>        (nonce, ciphertext and tag in base64url)
 *
 * The current key encrypts; `next` and `previous` keys decrypt; a retired or revoked key
 * is refused by name. Optional associated data (a table and row id) binds a value to its
 * place: moved to another row it no longer decrypts.
 */
import { createCipheriv, createDecipheriv, randomFillSync } from 'node:crypto'
import { inspect } from 'node:util'
import { readDataKeys, type DataKey } from './data-keys.ts'
import type { Env } from './env.ts'
import { RekeyError } from './errors.ts'
import type { KeyState } from './states.ts'

/** The format version every ciphertext starts with. */
export const CIPHERTEXT_VERSION = 'rk1'
/** The GCM random-nonce bound: at most 2^32 encryptions under one key (NIST SP 800-38D, 8.3). */
export const MAX_ENCRYPTIONS_PER_KEY = 2 ** 32
/** Longest ciphertext `decrypt` reads, in characters (about 48 MiB of plaintext). */
export const MAX_CIPHERTEXT_LENGTH = 64 * 1024 * 1024

const NONCE_BYTES = 12
const TAG_BYTES = 16
const NONCE_CHARS = 16
const PREFIX = `${CIPHERTEXT_VERSION}.`
const KID_CHARS = /^[A-Za-z0-9_-]+$/

/** Options of a cipher. */
export interface CipherOptions {
  /** Encryptions under one key in this process before `encrypt` refuses (`ERR_UNSAFE`). Default 2^32. */
  maxEncryptions?: number
  /** Called once at half and once at 90 % of `maxEncryptions` per key. Default: `process.emitWarning`. */
  onWarning?: (message: string) => void
}

/** Options of `encrypt` and `decrypt`. */
export interface CryptOptions {
  /** Associated data: authenticated, not stored (e.g. `users:42`). Decrypt must pass the same. */
  aad?: string
}

/** Options of {@link Cipher.fromStore}: the cipher's, and how to reach the store's data keys. */
export interface StoreCipherOptions extends CipherOptions {
  /** Where REKEY_MASTER_KEY, REKEY_MASTER_KEY_PREV and REKEY_STORE are read. Default `process.env`. */
  env?: Env
  /** The name this process is listed under in `rekey status` (instances). Default `cipher`. */
  name?: string
}

/** Opens a store-backed cipher; registered by the package entry (`rekey/crypt`), core does no I/O. */
export type StoreCipherFactory = (location: string | undefined, options: StoreCipherOptions) => Promise<Cipher>

let storeCipherFactory: StoreCipherFactory | null = null

/** Registers the store side of {@link Cipher.fromStore}. */
export function registerStoreCipher(factory: StoreCipherFactory): void {
  storeCipherFactory = factory
}

/** What anyone may know about a data key: never its material. */
export interface DataKeyInfo {
  readonly kid: string
  readonly state: KeyState
  /** Encryptions under this key by this cipher (this process). */
  readonly encryptions: number
}

interface Slot {
  readonly key: DataKey
  readonly prefix: string
  count: number
}

// Nonces come from a pool filled by the CSPRNG: one syscall per 340 values instead of one each.
const POOL = Buffer.alloc(NONCE_BYTES * 340)
let poolAt = POOL.length

function nextNonce(): Buffer {
  if (poolAt === POOL.length) {
    randomFillSync(POOL)
    poolAt = 0
  }
  const nonce = Buffer.from(POOL.subarray(poolAt, poolAt + NONCE_BYTES))
  // Each pool byte is used once: wiped after the copy so no later value can repeat it.
  POOL.fill(0, poolAt, poolAt + NONCE_BYTES)
  poolAt += NONCE_BYTES
  return nonce
}

/** The slots of a key set; counts of kids already known carry over. */
function slotsOf(keys: readonly DataKey[], before: ReadonlyMap<string, Slot>): { byKid: Map<string, Slot>, current: Slot } {
  const current = keys.filter((k) => k.state === 'current')
  if (current.length !== 1) throw new RekeyError('ERR_CONFIG', `A cipher needs exactly one current data key (found ${current.length})`)
  const byKid = new Map<string, Slot>()
  for (const key of keys) {
    if (byKid.has(key.kid)) throw new RekeyError('ERR_CONFIG', `Data key ${key.kid} is configured twice`)
    byKid.set(key.kid, { key, prefix: `${PREFIX}${key.kid}.`, count: before.get(key.kid)?.count ?? 0 })
  }
  return { byKid, current: byKid.get((current[0] as DataKey).kid) as Slot }
}

const malformed = (): RekeyError => new RekeyError('ERR_CIPHERTEXT_MALFORMED', 'The value is not a rekey ciphertext')

/** Decodes strict base64url of `chars` characters, or undefined (Buffer.from skips bad characters silently). */
function decode(text: string, start: number, end: number): Buffer | undefined {
  const chars = end - start
  if (chars % 4 === 1) return undefined
  const bytes = Buffer.from(text.slice(start, end), 'base64url')
  return bytes.length === Math.floor((chars * 3) / 4) ? bytes : undefined
}

/** The parts of a ciphertext, by position; throws `ERR_CIPHERTEXT_MALFORMED`. */
function split(ciphertext: string): { kid: string, nonceAt: number, bodyAt: number } {
  if (!ciphertext.startsWith(PREFIX) || ciphertext.length > MAX_CIPHERTEXT_LENGTH) throw malformed()
  const kidEnd = ciphertext.indexOf('.', PREFIX.length)
  if (kidEnd <= PREFIX.length || kidEnd > PREFIX.length + 64) throw malformed()
  const nonceEnd = kidEnd + 1 + NONCE_CHARS
  if (ciphertext.charCodeAt(nonceEnd) !== 0x2e) throw malformed()
  const kid = ciphertext.slice(PREFIX.length, kidEnd)
  // Only kid characters: a hostile value cannot carry control characters into a message or a log.
  if (!KID_CHARS.test(kid)) throw malformed()
  return { kid, nonceAt: kidEnd + 1, bodyAt: nonceEnd + 1 }
}

/**
 * Encrypts and decrypts fields with the data keys of the environment. Holds key material
 * only as KeyObjects in private fields: `inspect`, `JSON.stringify` and `String()` show
 * kids and states only.
 */
export class Cipher {
  #byKid: ReadonlyMap<string, Slot>
  #current: Slot
  readonly #max: number
  readonly #warn: (message: string) => void
  #close: (() => Promise<void>) | null = null

  /** Builds a cipher from data keys; exactly one must be `current`. Most callers use {@link Cipher.fromEnv}. */
  constructor(keys: readonly DataKey[], options: CipherOptions = {}) {
    const max = options.maxEncryptions ?? MAX_ENCRYPTIONS_PER_KEY
    if (!Number.isSafeInteger(max) || max < 1 || max > MAX_ENCRYPTIONS_PER_KEY) throw new RangeError('maxEncryptions must be an integer from 1 to 2^32')
    const { byKid, current } = slotsOf(keys, new Map())
    this.#byKid = byKid
    this.#current = current
    this.#max = max
    this.#warn = options.onWarning ?? ((message) => { process.emitWarning(message, 'RekeyWarning') })
  }

  /**
   * The cipher of the data keys kept in rekey's store (`rekey rotate --secret ENCRYPTION_KEY`
   * without an env file): the store at `location` (default REKEY_STORE, else
   * `./.rekey/rekey.db`), opened with REKEY_MASTER_KEY (or the `master.key` beside a SQLite
   * store). The cipher follows every rotation without a restart: a staged key decrypts as
   * soon as it is staged, and the process is listed as an instance, so a rotation promotes the
   * new key only once this process can decrypt its values. Call `close()` on shutdown.
   * Needs the package entry (`rekey/crypt`).
   */
  static fromStore(location?: string, options: StoreCipherOptions = {}): Promise<Cipher> {
    if (storeCipherFactory === null) return Promise.reject(new TypeError('Cipher.fromStore needs the package entry: import { Cipher } from \'rekey/crypt\''))
    return storeCipherFactory(location, options)
  }

  /**
   * Replaces the key set (a store-backed cipher after a rotation). Encryption counts carry
   * over by kid. A set without exactly one current key is refused and changes nothing.
   * @internal
   */
  update(keys: readonly DataKey[]): void {
    const { byKid, current } = slotsOf(keys, this.#byKid)
    this.#byKid = byKid
    this.#current = current
  }

  /** @internal Set by the store side: what `close()` releases. */
  onClose(close: () => Promise<void>): void {
    this.#close = close
  }

  /** Releases what a store-backed cipher holds (its store connection, heartbeat and listener). Nothing for a cipher from the environment. */
  async close(): Promise<void> {
    const close = this.#close
    this.#close = null
    await close?.()
  }

  /**
   * The cipher of `ENCRYPTION_KEY` (encrypts) and `ENCRYPTION_KEY_PREV` (decrypts until
   * finalize), or of the JWK list in `ENCRYPTION_KEYS`. Every problem is reported at once in
   * one `ERR_CONFIG` (`ERR_WEAK_SECRET` when keys under 32 bytes are the only problem).
   */
  static fromEnv(env: Env = process.env, options: CipherOptions = {}): Cipher {
    const read = readDataKeys(env)
    const problems = [...read.problems, ...read.weakProblems]
    if (problems.length > 0) {
      const code = read.problems.length === 0 ? 'ERR_WEAK_SECRET' : 'ERR_CONFIG'
      throw new RekeyError(code, `Invalid data key configuration: ${problems.join('; ')}`, { problems })
    }
    const cipher = new Cipher(read.keys, options)
    for (const name of read.weak) cipher.#warn(`${name} is under 32 bytes and accepted only because REKEY_ALLOW_WEAK_SECRETS=1`)
    return cipher
  }

  /** The kid a ciphertext names, without decrypting it; throws `ERR_CIPHERTEXT_MALFORMED`. */
  static kidOf(ciphertext: string): string {
    if (typeof ciphertext !== 'string') throw new TypeError('ciphertext must be a string')
    return split(ciphertext).kid
  }

  /** The kid of the key that encrypts. */
  get currentKid(): string {
    return this.#current.key.kid
  }

  /** Encrypts under the current key; the result names its kid. */
  encrypt(plaintext: string | Uint8Array, options?: CryptOptions): string {
    const slot = this.#current
    this.#count(slot)
    const nonce = nextNonce()
    const gcm = createCipheriv('aes-256-gcm', slot.key.key, nonce)
    const aad = options?.aad
    if (aad !== undefined) {
      if (typeof aad !== 'string') throw new TypeError('aad must be a string')
      gcm.setAAD(Buffer.from(aad, 'utf8'))
    }
    let head: Buffer
    if (typeof plaintext === 'string') head = gcm.update(plaintext, 'utf8')
    else if (plaintext instanceof Uint8Array) head = gcm.update(plaintext)
    else throw new TypeError('plaintext must be a string or a Uint8Array')
    const tail = gcm.final()
    const body = Buffer.concat([head, tail, gcm.getAuthTag()])
    return `${slot.prefix}${nonce.toString('base64url')}.${body.toString('base64url')}`
  }

  /**
   * Decrypts with whichever key the value names, while that key is `next`, `current` or
   * `previous`. Throws `ERR_CIPHERTEXT_MALFORMED`, `ERR_KEY_UNKNOWN`, `ERR_KEY_RETIRED`,
   * `ERR_KEY_REVOKED` or `ERR_CIPHERTEXT_AUTH` (altered, or other associated data).
   */
  decrypt(ciphertext: string, options?: CryptOptions): Buffer {
    if (typeof ciphertext !== 'string') throw new TypeError('ciphertext must be a string')
    const { kid, nonceAt, bodyAt } = split(ciphertext)
    const slot = this.#byKid.get(kid)
    if (slot === undefined) throw new RekeyError('ERR_KEY_UNKNOWN', `No data key ${kid} is configured`)
    if (slot.key.state === 'retired') throw new RekeyError('ERR_KEY_RETIRED', `The data key ${kid} is retired`)
    if (slot.key.state === 'revoked') throw new RekeyError('ERR_KEY_REVOKED', `The data key ${kid} was revoked`)
    const nonce = decode(ciphertext, nonceAt, bodyAt - 1)
    const body = decode(ciphertext, bodyAt, ciphertext.length)
    if (nonce?.length !== NONCE_BYTES || body === undefined || body.length < TAG_BYTES) throw malformed()
    const aad = options?.aad
    if (aad !== undefined && typeof aad !== 'string') throw new TypeError('aad must be a string')
    try {
      const gcm = createDecipheriv('aes-256-gcm', slot.key.key, nonce, { authTagLength: TAG_BYTES })
      if (aad !== undefined) gcm.setAAD(Buffer.from(aad, 'utf8'))
      gcm.setAuthTag(body.subarray(body.length - TAG_BYTES))
      const head = gcm.update(body.subarray(0, body.length - TAG_BYTES))
      const tail = gcm.final()
      return tail.length === 0 ? head : Buffer.concat([head, tail])
    } catch {
      // One message whatever failed inside GCM: a tampered value and a wrong row look the same.
      throw new RekeyError('ERR_CIPHERTEXT_AUTH', `The value encrypted under data key ${kid} did not authenticate (altered, or other associated data)`)
    }
  }

  /** True when the value is under a key other than the current one (rewrap would change it). */
  needsRewrap(ciphertext: string): boolean {
    return Cipher.kidOf(ciphertext) !== this.#current.key.kid
  }

  /** Decrypts under any key that still decrypts and encrypts again under the current key. */
  rewrap(ciphertext: string, options?: CryptOptions): string {
    return this.encrypt(this.decrypt(ciphertext, options), options)
  }

  /** The keys (kid, state, encryptions in this process), never their material. */
  list(): DataKeyInfo[] {
    return [...this.#byKid.values()].map((s) => ({ kid: s.key.kid, state: s.key.state, encryptions: s.count }))
  }

  #count(slot: Slot): void {
    if (slot.count >= this.#max) {
      throw new RekeyError('ERR_UNSAFE', `Data key ${slot.key.kid} has encrypted ${slot.count} values, the AES-GCM random-nonce bound: rotate ENCRYPTION_KEY (rekey rotate --secret ENCRYPTION_KEY)`)
    }
    slot.count += 1
    // Two warnings with time to act: at half of the bound, and at 90 %.
    if (slot.count === Math.ceil(this.#max / 2) || slot.count === Math.ceil(this.#max * 0.9)) {
      this.#warn(`Data key ${slot.key.kid} has encrypted ${slot.count} of at most ${this.#max} values (AES-GCM random-nonce bound): rotate ENCRYPTION_KEY soon`)
    }
  }

  toJSON(): { currentKid: string, keys: DataKeyInfo[] } {
    return { currentKid: this.currentKid, keys: this.list() }
  }

  toString(): string {
    return `Cipher(${this.currentKid})`
  }

  [inspect.custom](): string {
    return `Cipher ${inspect(this.toJSON(), { depth: 3 })}`
  }
}
