/**
 * rekey's error type and its catalog.
 *
 * Every failure that a caller can act on is a {@link RekeyError} with a stable `code`.
 * Codes are never reused for another meaning. Messages never contain secret material:
 * they name variables, kids and claims, never values.
 */

/** One row of the catalog: the code, what it means, and the HTTP status it maps to. */
export interface ErrorSpec {
  readonly status: number
  readonly meaning: string
}

/** Every error code rekey throws, with its meaning and HTTP status. `docs/errors.md` mirrors it. */
export const ERRORS = Object.freeze({
  ERR_TOKEN_MALFORMED: { status: 401, meaning: 'The token is not a well-formed compact JWS (segments, characters, JSON, size).' },
  ERR_TOKEN_SIGNATURE: { status: 401, meaning: 'The signature does not verify with any key allowed to verify it.' },
  ERR_TOKEN_EXPIRED: { status: 401, meaning: 'The token is past its `exp` (or older than `maxTokenAge`), beyond the clock tolerance.' },
  ERR_TOKEN_NOT_YET_VALID: { status: 401, meaning: 'The token is before its `nbf` (or, when `maxTokenAge` is set, its `iat` lies in the future), beyond the clock tolerance.' },
  ERR_TOKEN_CLAIM: { status: 401, meaning: 'A claim is missing, has the wrong type, or does not match (`aud`, `iss`, `sub`, required claims).' },
  ERR_TOKEN_ALG: { status: 401, meaning: 'The header `alg` is not the algorithm bound to the key, or no key uses it (`none` included).' },
  ERR_TOKEN_REVOKED: { status: 401, meaning: 'The token, its session or its user was revoked (logout, logout-all, emergency).' },
  ERR_KEY_UNKNOWN: { status: 401, meaning: 'The header `kid` names no key in the keyring.' },
  ERR_KEY_RETIRED: { status: 401, meaning: 'The header `kid` names a retired key: its grace window has ended.' },
  ERR_KEY_REVOKED: { status: 401, meaning: 'The header `kid` names a revoked key: it was cut on purpose, usually after a compromise.' },
  ERR_WEAK_SECRET: { status: 500, meaning: 'A secret is shorter than 32 bytes. Generate one with `rekey gen`.' },
  ERR_CONFIG: { status: 500, meaning: 'The configuration is missing values or contradicts itself; every problem is listed.' },
  ERR_CONFLICT: { status: 409, meaning: 'Another operation changed the same state first (a concurrent rotation); nothing was changed.' },
  ERR_UNSAFE: { status: 409, meaning: 'The step would cut tokens or sessions that are still valid; it is refused unless forced.' },
  ERR_STORE_UNAVAILABLE: { status: 503, meaning: 'The store (SQLite or PostgreSQL) did not answer; retry later.' },
  ERR_JWKS_UNAVAILABLE: { status: 503, meaning: 'The JWKS URL of a remote keyring (`Keyring.fromJwks`, `jwksUrl`) did not answer its first fetch; later failures keep the last good key set.' },
  ERR_CIPHERTEXT_MALFORMED: { status: 400, meaning: 'The value is not a rekey ciphertext (`rk1.<kid>.<nonce>.<ciphertext+tag>`, base64url parts of the right sizes).' },
  ERR_CIPHERTEXT_AUTH: { status: 400, meaning: 'The ciphertext did not authenticate (GCM tag): it was altered, truncated, or decrypted with other associated data (another row).' },
} satisfies Record<string, ErrorSpec>)

/** A code from the catalog. */
export type ErrorCode = keyof typeof ERRORS

/**
 * The CLI's own `--json` error codes, for failures that are not a {@link RekeyError}: no HTTP
 * status, an exit code. `docs/errors.md` mirrors this table too (checked by a test).
 */
export const CLI_ERRORS = Object.freeze({
  ERR_USAGE: { exit: 2, meaning: 'Bad usage: an unknown option, a missing argument, a bad value.' },
  ERR_REFUSED: { exit: 1, meaning: 'A check said no without a more precise code (overdue secrets, a failed smoke test).' },
  ERR_INTERNAL: { exit: 1, meaning: 'An unexpected failure. Please report it.' },
  ERR_SYSTEM: { exit: 1, meaning: 'The operating system refused: a port already in use or not allowed (`EADDRINUSE`, `EACCES`), a file or directory that cannot be read or written (`EACCES`, `EPERM`, `EROFS`, `ENOSPC`...); the message names the address or path and what to change. A path that is a directory where a file is named, a loop of symbolic links, or a file where a directory is needed (`EISDIR`, `ELOOP`, `ENOTDIR`) is `ERR_CONFIG`, exit 2.' },
  ERR_BACKUP_INVALID: { exit: 1, meaning: 'A backup archive failed a check (its MAC does not verify under the store\'s master key, wrong passphrase, corruption, hash or row-count mismatch, an unsafe entry, schema objects that are not rekey\'s own). See [backup.md](backup.md).' },
} satisfies Record<string, { exit: number, meaning: string }>)

/** A code of {@link CLI_ERRORS}. */
export type CliErrorCode = keyof typeof CLI_ERRORS

/** Optional details attached to an error. */
export interface RekeyErrorOptions {
  /** The underlying error, for logs. Never a secret. */
  cause?: unknown
  /** The claim a claim error is about (`exp`, `aud`...). */
  claim?: string
  /** Every problem found, for configuration errors. */
  problems?: readonly string[]
  /** The kid of the keyring's key a token failure is about (never one the keyring does not hold). */
  kid?: string
}

/**
 * The one error class rekey throws for bad tokens, bad configuration and refused operations.
 * API misuse (a non-string token, a non-object claims set) throws `TypeError` instead.
 */
export class RekeyError extends Error {
  /** A stable code from {@link ERRORS}. */
  readonly code: ErrorCode
  /** The HTTP status this error maps to. */
  readonly status: number
  /** The claim a claim error is about, when there is one. */
  readonly claim: string | undefined
  /** Every problem found, for `ERR_CONFIG` and `ERR_WEAK_SECRET`. */
  readonly problems: readonly string[]
  /**
   * For a token failure: the kid of the keyring's key the token was checked against (its
   * header named it, or it was the key that signed a kid-less token). `undefined` when no key
   * of the keyring was involved (malformed, unknown kid), so a forged header never shows here.
   */
  readonly kid: string | undefined

  constructor(code: ErrorCode, message: string, options: RekeyErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.code = code
    this.status = ERRORS[code]?.status ?? 500
    this.claim = options.claim
    this.problems = Object.freeze([...(options.problems ?? [])])
    this.kid = options.kid
  }

  override get name(): string {
    return 'RekeyError'
  }

  /** The JSON body rekey answers with: `{ error, message }`. */
  toJSON(): { error: ErrorCode, message: string } {
    return { error: this.code, message: this.message }
  }
}

/** True when `err` is a RekeyError (also across copies of the package). */
export function isRekeyError(err: unknown): err is RekeyError {
  return err instanceof RekeyError || (err instanceof Error && err.name === 'RekeyError' && typeof (err as { code?: unknown }).code === 'string')
}
