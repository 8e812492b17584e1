/**
 * Authentic backups: the archive's encryption alone proves nothing about who made it (with
 * `--recipient`, the age recipient is public: anyone who can write to the backup bucket can
 * build an archive that decrypts). So every archive carries `manifest.mac`, an HMAC-SHA256 of
 * the exact bytes of `manifest.json` under a key derived from the master key (HKDF, its own
 * label); the manifest holds the SHA-256 of every part, so the MAC covers the parts too.
 * `backup verify` and `restore` check it before anything is restored.
 */
import { createHmac, hkdfSync } from 'node:crypto'
import { secretEquals } from '../../core/constant-time.ts'
import { masterKeyId } from '../../service/audit/segments.ts'
import { BackupError } from './backup-error.ts'

const MAC_LABEL = 'rekey/backup-mac/v1'

function macKey(masterKey: Uint8Array): Buffer {
  return Buffer.from(hkdfSync('sha256', masterKey, Buffer.alloc(0), MAC_LABEL, 32))
}

/** The MAC of a manifest's bytes, hex (what `manifest.mac` holds). */
export function manifestMac(masterKey: Uint8Array, manifestBytes: Uint8Array): string {
  return createHmac('sha256', macKey(masterKey)).update(manifestBytes).digest('hex')
}

/**
 * Checks `macText` (the content of `manifest.mac`) against the manifest's bytes; BackupError
 * when it does not verify. `claimedKeyId` (the manifest's own, unauthenticated) only makes the
 * message more useful: an archive of another master key, or a forged one.
 */
export function checkManifestMac(masterKey: Uint8Array, manifestBytes: Uint8Array, macText: string, claimedKeyId: unknown): void {
  const given = /^[0-9a-f]{64}$/.test(macText.trim()) ? Buffer.from(macText.trim(), 'hex') : Buffer.alloc(0)
  const expected = Buffer.from(manifestMac(masterKey, manifestBytes), 'hex')
  if (secretEquals(given, expected)) return
  const ours = masterKeyId(masterKey)
  const other = typeof claimedKeyId === 'string' && claimedKeyId !== ours
    ? ` (the archive says it was made under master key k:${claimedKeyId.slice(0, 16)}, the store's is k:${ours}: use the master key of the backed-up store, or the archive is forged)`
    : ' (the archive was forged or altered after it was made)'
  throw new BackupError(`the archive is not authentic: its MAC does not verify under this store's master key${other}; nothing was restored`)
}
