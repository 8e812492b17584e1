import { createHmac, type KeyObject } from 'node:crypto'

// A fixed label under the secret: one-way and keyed, so a kid says nothing about the
// secret, and every instance that holds the same secret derives the same kid.
const LABEL = 'rekey/kid/v1'

/**
 * The kid of a secret: 16 base64url characters (96 bits) of HMAC-SHA-256(secret, label).
 */
export function deriveKid(secret: KeyObject): string {
  return createHmac('sha256', secret).update(LABEL).digest('base64url').slice(0, 16)
}
