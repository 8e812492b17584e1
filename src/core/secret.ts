import { randomBytes } from 'node:crypto'

/** Options of {@link generateSecret}. */
export interface GenerateSecretOptions {
  /** Random bytes, 32 to 64. Default 32 (256 bits). */
  bytes?: number
  /** Text encoding of the bytes. Default `hex`. */
  encoding?: 'hex' | 'base64' | 'base64url'
}

const ENCODINGS = new Set(['hex', 'base64', 'base64url'])

/**
 * A new random secret from the operating system's CSPRNG, as text ready for an env file.
 * The text is what a JWT library uses as the HMAC key, so `bytes` is a floor on its strength.
 */
export function generateSecret(options: GenerateSecretOptions = {}): string {
  const bytes = options.bytes ?? 32
  const encoding = options.encoding ?? 'hex'
  if (!Number.isInteger(bytes) || bytes < 32 || bytes > 64) {
    throw new RangeError('bytes must be an integer from 32 to 64')
  }
  if (!ENCODINGS.has(encoding)) {
    throw new RangeError('encoding must be one of hex, base64, base64url')
  }
  return randomBytes(bytes).toString(encoding)
}
