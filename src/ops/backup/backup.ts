/**
 * Backups of the store, their restore drill, and restore.
 *
 * - {@link createBackup}: a consistent snapshot (SQLite online backup, or pg_dump in an exported
 *   snapshot), a manifest, packed and encrypted into `rekey-backup-<UTC stamp>.tgz.age` (0600).
 * - {@link verifyBackup}: decrypt, check every hash, restore into a temporary store, check
 *   integrity, schema version and row counts. Any failure is a BackupError.
 * - {@link restoreBackup}: the same checks, then the store is replaced; a store holding data is
 *   only replaced with `force`, and never while an instance is running on it.
 *
 * Every archive is authenticated with a MAC keyed from the master key (`authenticity.ts`),
 * checked before anything else is trusted; only rekey's own schema objects are ever backed up
 * or restored (`own-schema.ts`). The master key is never in an archive: without it, a
 * restored store's managed keys cannot be opened. Keep it apart (a password manager, a KMS).
 */
import { createHash } from 'node:crypto'
import { createReadStream, promises as fs } from 'node:fs'
import path from 'node:path'
import { isPostgresLocation } from '../../config/load.ts'
import { RekeyError } from '../../core/errors.ts'
import { masterKeyId } from '../../service/audit/segments.ts'
import { LIVE_WINDOW_MS } from '../../service/keys/rotation.ts'
import { maskLocation } from '../../store/errors.ts'
import { openStore } from '../../store/open.ts'
import { readArchive, writeArchive, type SealOptions, type UnsealOptions } from './archive.ts'
import { checkManifestMac, manifestMac } from './authenticity.ts'
import { BackupError } from './backup-error.ts'
import { makeOwnedTempDir, removeDeadTempDirs } from './leftovers.ts'
import { alignMasterKeyFile, postgresMasterKey, type RestoredMasterKey } from './master-key-beside.ts'
import { keepCuts, planDataKeys, readCuts, type Cuts, type KeptState } from './keep-revocations.ts'
import { ARCHIVE_FORMAT, MAC_NAME, MANIFEST_NAME, PART_NAME, parseManifest, type Dialect, type Manifest } from './manifest.ts'
import {
  checkOwnEntries, checkPostgresDump, dropDeadDrillDatabases, dumpToc, postgresDataRows, postgresLiveInstances, postgresTargetSchema, restoreDump, snapshotPostgres,
  type LiveInstance,
} from './postgres-snapshot.ts'
import { checkOwnSqlite, checkSqliteCopy, replaceSqliteStore, snapshotSqlite, sqliteDataRows, sqliteLiveInstances, type SnapshotFacts } from './sqlite-snapshot.ts'
import { rekeyVersion } from './version.ts'

/** `20261123T021700Z` for a date. */
export function stampOf(date: Date): string {
  return date.toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '')
}

async function sha256File(file: string): Promise<{ sha256: string, bytes: number }> {
  const hash = createHash('sha256')
  let bytes = 0
  for await (const chunk of createReadStream(file)) {
    hash.update(chunk as Buffer)
    bytes += (chunk as Buffer).length
  }
  return { sha256: hash.digest('hex'), bytes }
}

/** A fresh 0700 directory named for this process, removed when `fn` settles or on an interrupt. */
async function withTempDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const { dir, release } = makeOwnedTempDir()
  try {
    return await fn(dir)
  } finally {
    await fs.rm(dir, { recursive: true, force: true })
    release()
  }
}

/**
 * Removes what dead runs left (a kill -9 runs no cleanup): this host's temporary directories
 * of processes that are gone and, for a PostgreSQL store, drill databases no live run holds.
 * Returns their names (paths, database names). A server that does not answer is left to the
 * operation that follows, which reports it.
 */
export async function removeLeftovers(location: string): Promise<string[]> {
  const removed = await removeDeadTempDirs()
  if (isPostgresLocation(location)) removed.push(...(await dropDeadDrillDatabases(location).catch(() => [])).map((d) => `database ${d}`))
  return removed
}

/** What {@link createBackup} made. */
export interface BackupResult {
  readonly file: string
  readonly bytes: number
  readonly manifest: Manifest
}

/**
 * Backs up the store at `location` into `outDir` (created 0700 if missing), authenticated
 * under `masterKey` (the store's). A store holding objects that are not rekey's own is refused.
 */
export async function createBackup(location: string, outDir: string, seal: SealOptions, masterKey: Buffer, now: Date = new Date()): Promise<BackupResult> {
  const dialect: Dialect = isPostgresLocation(location) ? 'postgres' : 'sqlite'
  // Checked before the snapshot, so a missing passphrase costs nothing.
  if ((seal.recipients ?? []).length === 0 && (seal.passphrase ?? '') === '') {
    throw new RekeyError('ERR_CONFIG', 'set REKEY_BACKUP_PASSPHRASE or give --recipient age1...: a backup is always encrypted')
  }
  await fs.mkdir(outDir, { recursive: true, mode: 0o700 })
  return withTempDir(async (dir) => {
    const part = PART_NAME[dialect]
    const snapshotFile = path.join(dir, part)
    const facts: SnapshotFacts & { schema?: string } = dialect === 'sqlite' ? await snapshotSqlite(location, snapshotFile) : await snapshotPostgres(location, snapshotFile)
    // A planted trigger or view would be carried into every restore: refuse it now, not then.
    if (facts.schema === undefined) checkOwnSqlite(snapshotFile)
    else checkOwnEntries(await dumpToc(snapshotFile), facts.schema)
    const manifest: Manifest = {
      format: ARCHIVE_FORMAT,
      rekeyVersion: rekeyVersion(),
      dialect,
      schemaVersion: facts.schemaVersion,
      ...(facts.schema === undefined ? {} : { pgSchema: facts.schema }),
      createdAt: now.toISOString(),
      masterKeyId: masterKeyId(masterKey),
      source: maskLocation(location),
      parts: [{ name: part, ...(await sha256File(snapshotFile)) }],
      rowCounts: facts.rowCounts,
    }
    const manifestBytes = Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`, 'utf8')
    await fs.writeFile(path.join(dir, MANIFEST_NAME), manifestBytes, { mode: 0o600 })
    await fs.writeFile(path.join(dir, MAC_NAME), `${manifestMac(masterKey, manifestBytes)}\n`, { mode: 0o600 })
    const file = path.join(outDir, `rekey-backup-${stampOf(now)}.tgz.age`)
    const bytes = await writeArchive(dir, [MANIFEST_NAME, MAC_NAME, part], file, seal)
    return { file, bytes, manifest }
  })
}

/**
 * Decrypts and extracts into `dir`, then checks, in this order: the MAC of the manifest under
 * `masterKey` (before the manifest's content is trusted at all), the manifest, every hash.
 */
async function openArchive(file: string, unseal: UnsealOptions, masterKey: Buffer, dir: string): Promise<Manifest> {
  const extracted = await readArchive(file, unseal, new Set([MANIFEST_NAME, MAC_NAME, ...Object.values(PART_NAME)]), dir)
  if (!extracted.has(MANIFEST_NAME)) throw new BackupError('the archive has no manifest.json')
  const manifestBytes = await fs.readFile(path.join(dir, MANIFEST_NAME))
  let claimed: { format?: unknown, masterKeyId?: unknown } = {}
  try {
    claimed = JSON.parse(manifestBytes.toString('utf8')) as typeof claimed
  } catch { /* parseManifest names it, once authentic */ }
  if (!extracted.has(MAC_NAME)) {
    // parseManifest explains format 1 (made before MACs existed); anything else is a forgery.
    if (claimed.format === 'rekey-backup/1') parseManifest(manifestBytes.toString('utf8'))
    throw new BackupError('the archive has no manifest.mac: it cannot be proven authentic, so it is refused; nothing was restored')
  }
  checkManifestMac(masterKey, manifestBytes, await fs.readFile(path.join(dir, MAC_NAME), 'utf8'), claimed.masterKeyId)
  const manifest = parseManifest(manifestBytes.toString('utf8'))
  const expected = new Set([MANIFEST_NAME, MAC_NAME, ...manifest.parts.map((p) => p.name)])
  for (const name of extracted.keys()) if (!expected.has(name)) throw new BackupError(`the archive holds ${name}, which its manifest does not list`)
  for (const p of manifest.parts) {
    const got = extracted.get(p.name)
    if (got === undefined) throw new BackupError(`${p.name} is listed in the manifest but missing from the archive`)
    if (got.sha256 !== p.sha256 || got.bytes !== p.bytes) throw new BackupError(`${p.name} does not match its SHA-256 in the manifest: the archive was changed or damaged`)
  }
  return manifest
}

/** What a drill or a restore checked. */
export interface VerifyReport {
  readonly manifest: Manifest
  readonly tables: number
  readonly rows: number
}

function summary(manifest: Manifest): VerifyReport {
  const counts = Object.values(manifest.rowCounts)
  return { manifest, tables: counts.length, rows: counts.reduce((a, b) => a + b, 0) }
}

/** Runs the drill on an extracted archive: own schema only, a temporary store, integrity, schema version, counts. */
async function drill(dir: string, manifest: Manifest, pgUrl: string | undefined): Promise<void> {
  const part = path.join(dir, PART_NAME[manifest.dialect])
  let problems: string[]
  if (manifest.dialect === 'sqlite') {
    checkOwnSqlite(part)
    problems = checkSqliteCopy(part, manifest)
    if (problems.length === 0) {
      // The copy must also open as a store with this rekey (a newer schema is refused here).
      const copy = path.join(dir, 'drill.sqlite')
      await fs.copyFile(part, copy)
      try {
        const store = await openStore(copy)
        await store.close()
      } catch (err) {
        problems.push(`the copy does not open as a store: ${(err as Error).message}`)
      }
    }
  } else {
    if (pgUrl === undefined || !isPostgresLocation(pgUrl)) {
      throw new RekeyError('ERR_CONFIG', 'this is a PostgreSQL backup: give --store postgres://... (or REKEY_STORE); the drill restores it into a temporary database there')
    }
    const entries = await dumpToc(part)
    checkOwnEntries(entries, manifest.pgSchema as string)
    problems = await checkPostgresDump(pgUrl, part, manifest.pgSchema as string, manifest, entries, path.join(dir, 'drill.list'))
  }
  if (problems.length > 0) throw new BackupError(`the restore drill failed: ${problems.join('; ')}`)
}

/**
 * `backup verify`: the whole restore drill, the MAC checked under `masterKey` first.
 * `pgUrl` is needed for PostgreSQL backups.
 */
export async function verifyBackup(file: string, unseal: UnsealOptions, masterKey: Buffer, pgUrl?: string): Promise<VerifyReport> {
  return withTempDir(async (dir) => {
    const manifest = await openArchive(file, unseal, masterKey, dir)
    await drill(dir, manifest, pgUrl)
    return summary(manifest)
  })
}

/** What a restore did. */
export interface RestoreReport extends VerifyReport {
  /** SQLite: where the replaced store was kept, if there was one. */
  readonly kept: string | null
  /** What the backup would have brought back (revocations, users' security state), kept instead, and the audit rows carried. */
  readonly keptState: KeptState
  /** Why the replaced store's revocations could not be read (a damaged store), or `null`. */
  readonly unreadCuts: string | null
  /** The master key the restored store needs, and the `master.key` beside it (SQLite). */
  readonly masterKey: RestoredMasterKey
}

/** Options of {@link restoreBackup}. */
export interface RestoreOptions {
  /** Replace a store that holds data (never one an instance runs on). */
  readonly force?: boolean
  /** Who restores, for the `restore` audit row. */
  readonly operator: string
  /** REKEY_MASTER_KEY_PREV, while a master-key rotation is rolled out. */
  readonly previousMasterKey?: Buffer | undefined
}

const ago = (now: number, at: number): string => `${Math.max(0, Math.round((now - at) / 1000))} s ago`

/**
 * Refuses (ERR_UNSAFE) while any instance has a fresh heartbeat in the target: it would keep
 * writing to the replaced store, and those writes would be lost. `--force` does not change that.
 */
async function refuseLiveInstances(location: string, schema: string | undefined, now: number): Promise<void> {
  const since = now - LIVE_WINDOW_MS
  const live: LiveInstance[] = schema === undefined ? sqliteLiveInstances(location, since) : await postgresLiveInstances(location, schema, since)
  if (live.length === 0) return
  const names = live.map((i) => `${i.instanceId} (${i.hostname} pid ${i.pid}, last seen ${ago(now, i.lastSeen)})`).join(', ')
  throw new RekeyError('ERR_UNSAFE', `restore refused: ${live.length} instance(s) are running on ${maskLocation(location)}: ${names}. Stop them first (a stopped instance removes its heartbeat; a killed one counts as running for ${LIVE_WINDOW_MS / 1000} s after its last one). --force does not override this`)
}

/**
 * Restores `file` into the store at `location` after the MAC check and the full drill.
 * Refused (ERR_UNSAFE) while an instance runs on the store, and for a store holding data
 * unless `force`. What the replaced store has cut (revoked keys, the not-before, ended
 * sessions) stays cut in the restored one, and a `restore` audit row is appended to it.
 */
export async function restoreBackup(file: string, unseal: UnsealOptions, location: string, masterKey: Buffer, options: RestoreOptions, now: Date = new Date()): Promise<RestoreReport> {
  return withTempDir(async (dir) => {
    const manifest = await openArchive(file, unseal, masterKey, dir)
    const targetIsPostgres = isPostgresLocation(location)
    if (targetIsPostgres !== (manifest.dialect === 'postgres')) {
      throw new RekeyError('ERR_CONFIG', `this is a ${manifest.dialect} backup and the store ${maskLocation(location)} is not`)
    }
    const schema = targetIsPostgres ? manifest.pgSchema as string : undefined
    if (schema !== undefined) {
      const target = await postgresTargetSchema(location)
      if (target !== schema) {
        throw new RekeyError('ERR_CONFIG', `this backup is of schema ${schema} and ${maskLocation(location)} uses schema ${target}: restore into a URL whose search_path is ${schema} (?options=-c%20search_path%3D${schema})`)
      }
    }
    await refuseLiveInstances(location, schema, now.getTime())
    const rows = schema !== undefined ? await postgresDataRows(location, schema) : sqliteDataRows(location)
    if (rows > 0 && options.force !== true) {
      throw new RekeyError('ERR_UNSAFE', `the store ${maskLocation(location)} holds data (${rows} rows): restoring would replace it; stop every instance and add --force (its revoked keys, ended sessions and not-before are kept)`)
    }
    await drill(dir, manifest, targetIsPostgres ? location : undefined)
    // The drill took a while: an instance may have started meanwhile.
    await refuseLiveInstances(location, schema, Date.now())
    const part = path.join(dir, PART_NAME[manifest.dialect])
    // A damaged store (often the reason to restore) must not block the restore: say what is unknown.
    let unreadCuts: string | null = null
    const cuts = rows === 0 ? null : await readCuts(location, Date.parse(manifest.createdAt)).catch((err: unknown): Cuts => {
      const why = err instanceof Error ? err.message : String(err)
      unreadCuts = `the replaced store's revocations, users and audit log could not be read (${why}): keys, sessions and passwords it cut after the backup may verify again, and its audit rows and the data keys it made after the backup are lost; if it had an emergency since, run rekey emergency again`
      return { revokedKeys: [], notBefore: 0, endedSessions: [], users: [], audit: { unreadable: why } }
    })
    // Before anything is replaced: every data key of the replaced store must open, or its values would be lost.
    planDataKeys([], cuts?.dataKeys ?? [], options.previousMasterKey === undefined ? [masterKey] : [masterKey, options.previousMasterKey], masterKey)
    const record = {
      operator: options.operator, masterKey, previousMasterKey: options.previousMasterKey, now: now.getTime(),
      // The archive's hash names it (a file name is the operator's to choose, and the notes mask long runs).
      source: `restored from the backup made ${manifest.createdAt} (archive sha256 ${(await sha256File(file)).sha256.slice(0, 16)}, ${manifest.dialect}, schema version ${manifest.schemaVersion})${unreadCuts === null ? '' : '; the replaced store\'s revocations could not be read'}`,
    }
    let kept: string | null = null
    let keptState: KeptState
    let key: RestoredMasterKey
    if (schema !== undefined) {
      await restoreDump(location, part, schema, await dumpToc(part), path.join(dir, 'restore.list'), true)
      keptState = await keepCuts(location, cuts, record)
      key = postgresMasterKey(masterKey)
    } else {
      // Into the snapshot before it replaces the store: the swap brings the cuts and the audit row at once.
      keptState = await keepCuts(part, cuts, record)
      kept = await replaceSqliteStore(part, location, stampOf(now))
      // After the swap, never before: a failed swap must leave the old store with its own key.
      key = await alignMasterKeyFile(location, masterKey, stampOf(now))
    }
    return { ...summary(manifest), kept, keptState, unreadCuts, masterKey: key }
  })
}
