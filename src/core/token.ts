import { RekeyError } from './errors.ts'

/** The longest token rekey reads, in characters (8 KiB). Longer input is refused unread. */
export const MAX_TOKEN_LENGTH = 8192
/** The longest header segment rekey decodes. */
const MAX_HEADER_LENGTH = 1024

const BASE64URL = /^[A-Za-z0-9_-]+$/

/** A token cut at its dots, with nothing decoded yet. */
export interface TokenParts {
  readonly header: string
  readonly payload: string
  readonly signingInput: string
  readonly signature: string
}

/** The parts of a header that rekey acts on. */
export interface HeaderInfo {
  readonly alg: string
  readonly kid: string | undefined
}

function malformed(message: string): RekeyError {
  return new RekeyError('ERR_TOKEN_MALFORMED', message)
}

/**
 * Splits a compact JWS into three non-empty segments. Character checks are left to the
 * readers of each segment: the header on a cache miss, the payload when decoded, the
 * signature by exact comparison (HMAC) or re-encoding (asymmetric keys).
 */
export function splitToken(token: string): TokenParts {
  if (token.length > MAX_TOKEN_LENGTH) throw malformed('The token is too long')
  const first = token.indexOf('.')
  const second = token.indexOf('.', first + 1)
  if (first <= 0 || second <= first + 1 || second === token.length - 1 || token.indexOf('.', second + 1) !== -1) {
    throw malformed('The token is not a compact JWS')
  }
  return {
    header: token.slice(0, first),
    payload: token.slice(first + 1, second),
    signingInput: token.slice(0, second),
    signature: token.slice(second + 1),
  }
}

/** True when the segment holds base64url characters only. */
export function isBase64url(segment: string): boolean {
  return BASE64URL.test(segment)
}

function decodeJsonObject(segment: string, what: string): Record<string, unknown> {
  // A segment whose length is 1 mod 4 cannot be base64url: some bits would be lost.
  if (segment.length % 4 === 1 || !BASE64URL.test(segment)) throw malformed(`The ${what} is not base64url`)
  let value: unknown
  try {
    value = JSON.parse(Buffer.from(segment, 'base64url').toString('utf8'))
  } catch {
    throw malformed(`The ${what} is not JSON`)
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw malformed(`The ${what} is not a JSON object`)
  return value as Record<string, unknown>
}

/** Decodes and checks a header segment. */
export function parseHeader(segment: string): HeaderInfo {
  if (segment.length > MAX_HEADER_LENGTH) throw malformed('The header is too long')
  const header = decodeJsonObject(segment, 'header')
  const { alg, kid, crit, b64 } = header
  if (typeof alg !== 'string') throw new RekeyError('ERR_TOKEN_ALG', 'The header has no "alg"')
  if (kid !== undefined && (typeof kid !== 'string' || kid.length === 0)) throw malformed('The header "kid" must be a non-empty string')
  // RFC 7515 §4.1.11: a recipient must refuse extensions it does not understand; rekey understands none.
  if (crit !== undefined) throw malformed('The header lists critical extensions rekey does not support')
  if (b64 !== undefined) throw malformed('The "b64" header parameter is not supported')
  return { alg, kid }
}

/** Decodes the payload segment into a claims object. */
export function parsePayload(segment: string): Record<string, unknown> {
  return decodeJsonObject(segment, 'payload')
}
