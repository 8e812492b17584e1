/**
 * Sealing secret material at rest: AES-256-GCM under a 32-byte master key.
 *
 * A sealed value is text, `v1.<iv>.<ciphertext>.<tag>` (each part base64url), so it fits a
 * text column. The additional authenticated data binds it to where it belongs (for a key,
 * its kid): a ciphertext copied into another row does not open there.
 */
import { createCipheriv, createDecipheriv, createSecretKey, KeyObject, randomBytes } from 'node:crypto'
import { RekeyError } from './errors.ts'

/**
 * A master key: its 32 bytes, or those bytes as a secret KeyObject ({@link masterKeyObject}),
 * which a hot path makes once: the cipher then skips importing the key on every call.
 */
export type MasterKey = Uint8Array | KeyObject

const VERSION = 'v1'
const IV_BYTES = 12
const TAG_BYTES = 16
const PART = /^[A-Za-z0-9_-]*$/

function checkKey(masterKey: MasterKey): void {
  if (masterKey instanceof KeyObject ? masterKey.type === 'secret' && masterKey.symmetricKeySize === 32 : masterKey instanceof Uint8Array && masterKey.length === 32) return
  throw new TypeError('the master key must be 32 bytes')
}

/** The master key as a KeyObject, for code that seals or opens on every request. */
export function masterKeyObject(masterKey: Uint8Array): KeyObject {
  checkKey(masterKey)
  return createSecretKey(masterKey)
}

/** Encrypts `plaintext` under `masterKey`, bound to `aad`. A fresh random IV every call. */
export function seal(masterKey: MasterKey, plaintext: Uint8Array | string, aad: string): string {
  checkKey(masterKey)
  if (typeof aad !== 'string') throw new TypeError('aad must be a string')
  const iv = randomBytes(IV_BYTES)
  const cipher = createCipheriv('aes-256-gcm', masterKey, iv, { authTagLength: TAG_BYTES })
  cipher.setAAD(Buffer.from(aad, 'utf8'))
  const data = typeof plaintext === 'string' ? Buffer.from(plaintext, 'utf8') : plaintext
  const ct = Buffer.concat([cipher.update(data), cipher.final()])
  return [VERSION, iv.toString('base64url'), ct.toString('base64url'), cipher.getAuthTag().toString('base64url')].join('.')
}

/**
 * Decrypts a value made by {@link seal} with the same master key and `aad`. Throws
 * `ERR_CONFIG` when it does not open: the wrong master key, another row's value, or tampering
 * (the three are indistinguishable by design).
 */
export function open(masterKey: MasterKey, sealed: string, aad: string): Buffer {
  checkKey(masterKey)
  const parts = typeof sealed === 'string' ? sealed.split('.') : []
  const [version, iv, ct, tag] = parts
  if (parts.length !== 4 || version !== VERSION || !parts.every((p) => PART.test(p))) {
    throw new RekeyError('ERR_CONFIG', 'A sealed value is not in the v1 format')
  }
  try {
    const decipher = createDecipheriv('aes-256-gcm', masterKey, Buffer.from(iv as string, 'base64url'), { authTagLength: TAG_BYTES })
    decipher.setAAD(Buffer.from(aad, 'utf8'))
    decipher.setAuthTag(Buffer.from(tag as string, 'base64url'))
    return Buffer.concat([decipher.update(Buffer.from(ct as string, 'base64url')), decipher.final()])
  } catch {
    throw new RekeyError('ERR_CONFIG', 'A sealed value does not open with this master key (wrong key, another row\'s value, or altered)')
  }
}

/**
 * {@link open} with the first of `masterKeys` that opens the value: during a master-key
 * rotation a value may still be sealed under the previous key. Throws like `open` when none does.
 */
export function openWithAny(masterKeys: readonly MasterKey[], sealed: string, aad: string): Buffer {
  let failure: unknown = new TypeError('no master key given')
  for (const key of masterKeys) {
    try {
      return open(key, sealed, aad)
    } catch (err) {
      failure = err
    }
  }
  throw failure
}
