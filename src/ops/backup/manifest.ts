/**
 * The manifest inside every backup archive: what was backed up, from which schema, how many
 * rows each table held, and the SHA-256 of each part. `backup verify` checks all of it.
 * `manifest.mac` beside it authenticates the manifest's exact bytes (see `authenticity.ts`),
 * and through the hashes every part.
 */
import { BackupError } from './backup-error.ts'

/** Format 2 added the MAC; format 1 archives carry none and are refused (they cannot be proven authentic). */
export const ARCHIVE_FORMAT = 'rekey-backup/2'
export const MANIFEST_NAME = 'manifest.json'
/** The HMAC of manifest.json's bytes under the backup key derived from the master key, hex. */
export const MAC_NAME = 'manifest.mac'

/** The snapshot file inside the archive, by dialect: the only names an archive may hold besides the manifest. */
export const PART_NAME = Object.freeze({ sqlite: 'store.sqlite', postgres: 'store.pgdump' } as const)
export type Dialect = keyof typeof PART_NAME

/** One file of the archive besides the manifest. */
export interface ManifestPart {
  readonly name: string
  readonly bytes: number
  readonly sha256: string
}

export interface Manifest {
  readonly format: typeof ARCHIVE_FORMAT
  readonly rekeyVersion: string
  readonly dialect: Dialect
  /** Highest applied migration of the store. */
  readonly schemaVersion: number
  /** PostgreSQL: the schema the tables live in. */
  readonly pgSchema?: string
  /** ISO-8601 UTC. */
  readonly createdAt: string
  /** Which master key the MAC is under (its public id `k:...`, as in the audit log). */
  readonly masterKeyId: string
  /** Where the backup came from, password masked. */
  readonly source: string
  readonly parts: readonly ManifestPart[]
  /** Rows per table at the moment of the snapshot. */
  readonly rowCounts: Readonly<Record<string, number>>
}

const isCount = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0

/** Parses and checks a manifest; a BackupError names what is wrong. */
export function parseManifest(text: string): Manifest {
  let m: Record<string, unknown>
  try {
    m = JSON.parse(text) as Record<string, unknown>
  } catch {
    throw new BackupError('the manifest is not valid JSON')
  }
  const problems: string[] = []
  if (m.format === 'rekey-backup/1') throw new BackupError('this archive was made by an older rekey (format rekey-backup/1) and carries no MAC: it cannot be proven authentic, so it is refused; take a new backup')
  if (m.format !== ARCHIVE_FORMAT) problems.push(`format is not ${ARCHIVE_FORMAT}`)
  if (typeof m.masterKeyId !== 'string' || !/^[A-Za-z0-9_-]{1,64}$/.test(m.masterKeyId)) problems.push('masterKeyId must be a key id')
  if (m.dialect !== 'sqlite' && m.dialect !== 'postgres') problems.push('dialect must be sqlite or postgres')
  if (!isCount(m.schemaVersion)) problems.push('schemaVersion must be a non-negative integer')
  if (typeof m.createdAt !== 'string' || Number.isNaN(Date.parse(m.createdAt))) problems.push('createdAt must be a date')
  if (m.dialect === 'postgres' && (typeof m.pgSchema !== 'string' || !/^[A-Za-z_][A-Za-z0-9_]*$/.test(m.pgSchema))) problems.push('pgSchema must be a plain identifier')
  const parts = m.parts
  const expected = m.dialect === 'sqlite' || m.dialect === 'postgres' ? PART_NAME[m.dialect] : undefined
  if (!Array.isArray(parts) || parts.length !== 1) problems.push('parts must list the one snapshot file')
  else {
    const p = parts[0] as Record<string, unknown>
    if (p.name !== expected) problems.push(`the part must be named ${String(expected)}`)
    if (!isCount(p.bytes)) problems.push('part bytes must be a count')
    if (typeof p.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(p.sha256)) problems.push('part sha256 must be 64 hex digits')
  }
  const counts = m.rowCounts
  if (typeof counts !== 'object' || counts === null || Object.entries(counts).some(([k, v]) => !/^[a-z_][a-z0-9_]*$/.test(k) || !isCount(v))) {
    problems.push('rowCounts must map table names to counts')
  }
  if (problems.length > 0) throw new BackupError(`the manifest is invalid: ${problems.join('; ')}`)
  return m as unknown as Manifest
}
