/**
 * `rekey/crypt`: the field cipher for values encrypted with `ENCRYPTION_KEY` (see docs/crypt.md).
 * Explicit named re-exports; types exported separately.
 */
export { Cipher, CIPHERTEXT_VERSION, MAX_ENCRYPTIONS_PER_KEY } from './core/cipher.ts'
export type { CipherOptions, CryptOptions, DataKeyInfo } from './core/cipher.ts'
export { RekeyError, isRekeyError } from './core/errors.ts'
