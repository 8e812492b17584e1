/**
 * A backup that does not hold: it cannot be decrypted (wrong passphrase or identity), a byte
 * changed, a hash or a row count differs from the manifest, the archive holds what it should
 * not. The CLI exits 1 on it. Problems of usage are `RekeyError('ERR_CONFIG')` (exit 2).
 */
import type { CliErrorCode } from '../../core/errors.ts'
export class BackupError extends Error {
  readonly code: CliErrorCode = 'ERR_BACKUP_INVALID'
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'BackupError'
  }
}
