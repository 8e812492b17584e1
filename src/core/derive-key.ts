/**
 * Purpose keys derived from the master key (HKDF-SHA-256, empty salt, one `info` label per
 * purpose): the audit chain, the master key's public id, the dashboard's cookie. A derived
 * key reveals nothing of the master key or of the other purposes' keys.
 */
import { hkdfSync } from 'node:crypto'

/** A 32-byte key for `info` (e.g. `rekey/audit-chain/v1`) derived from `masterKey`. */
export function deriveKey(masterKey: Uint8Array, info: string): Buffer {
  return Buffer.from(hkdfSync('sha256', masterKey, Buffer.alloc(0), info, 32))
}
