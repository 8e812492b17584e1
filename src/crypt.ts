/**
 * `rekey/crypt`: the field cipher for values encrypted with `ENCRYPTION_KEY` (see docs/crypt.md).
 * Explicit named re-exports; types exported separately.
 */
import { registerStoreCipher } from './core/cipher.ts'

export { Cipher, CIPHERTEXT_VERSION, MAX_ENCRYPTIONS_PER_KEY } from './core/cipher.ts'
export type { CipherOptions, CryptOptions, DataKeyInfo, StoreCipherOptions } from './core/cipher.ts'
export { RekeyError, isRekeyError } from './core/errors.ts'

// The store side of `Cipher.fromStore`, loaded on first use: `Cipher.fromEnv` alone loads no
// database driver (core does no I/O of its own).
registerStoreCipher(async (location, options) => (await import('./service/data-keys/store-cipher.ts')).openStoreCipher(location, options))
