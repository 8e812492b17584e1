/**
 * The archive on disk: a gzipped tar of the manifest and the snapshot, encrypted with age
 * (a passphrase through scrypt, or X25519 recipients), written 0600 and atomically.
 *
 * Reading never trusts the archive: entries are checked one by one before anything is
 * written (regular files only, only the expected names, each once: no absolute paths, no
 * `..`, no links), and the files go into a fresh temporary directory the caller removes.
 */
import { createHash, randomBytes } from 'node:crypto'
import { createReadStream, createWriteStream, promises as fs } from 'node:fs'
import path from 'node:path'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import type { ReadableStream as WebReadableStream } from 'node:stream/web'
import { Decrypter, Encrypter } from 'age-encryption'
import { create as tarCreate, Parser, type ReadEntry } from 'tar'
import { RekeyError } from '../../core/errors.ts'
import { BackupError } from './backup-error.ts'
import { onInterrupt } from './interrupt-cleanup.ts'
import { syncDirectory } from '../../config/env-file.ts'

/** How an archive is encrypted: a passphrase, or recipients (`age1...`). */
export interface SealOptions {
  readonly passphrase?: string
  readonly recipients?: readonly string[]
  /** scrypt work factor (log2) for passphrases. Default 18 (about a second); tests lower it. */
  readonly scryptLogN?: number
}

/** How an archive is decrypted: a passphrase and/or identities (`AGE-SECRET-KEY-1...`). */
export interface UnsealOptions {
  readonly passphrase?: string
  readonly identities?: readonly string[]
}

async function syncFile(file: string): Promise<void> {
  const handle = await fs.open(file, 'r+')
  try {
    await handle.sync()
  } finally {
    await handle.close()
  }
}

/** Passphrases shorter than this are refused: the archive can be attacked offline forever. */
export const MIN_PASSPHRASE_LENGTH = 16

function encrypterOf(seal: SealOptions): Encrypter {
  const e = new Encrypter()
  const recipients = seal.recipients ?? []
  if (recipients.length > 0) {
    for (const r of recipients) {
      if (!/^age1[0-9a-z]+$/.test(r)) throw new RekeyError('ERR_CONFIG', '--recipient must be an age recipient (age1...)')
      e.addRecipient(r)
    }
    return e
  }
  if (seal.passphrase === undefined || seal.passphrase === '') {
    throw new RekeyError('ERR_CONFIG', 'set REKEY_BACKUP_PASSPHRASE or give --recipient age1...: a backup is always encrypted')
  }
  if (seal.passphrase.length < MIN_PASSPHRASE_LENGTH) {
    throw new RekeyError('ERR_CONFIG', `REKEY_BACKUP_PASSPHRASE must be at least ${MIN_PASSPHRASE_LENGTH} characters (generate one with rekey gen)`)
  }
  e.setPassphrase(seal.passphrase)
  if (seal.scryptLogN !== undefined) e.setScryptWorkFactor(seal.scryptLogN)
  return e
}

/**
 * Packs `names` from `dir` into an encrypted archive at `file`: written to a temp file (0600)
 * beside it, synced, then linked into place, so the name never shows a partial archive and an
 * existing archive is never overwritten. Returns the archive's size in bytes.
 */
export async function writeArchive(dir: string, names: readonly string[], file: string, seal: SealOptions): Promise<number> {
  const encrypter = encrypterOf(seal)
  const temp = path.join(path.dirname(file), `.${path.basename(file)}.${randomBytes(6).toString('hex')}.tmp`)
  const release = onInterrupt(temp, () => fs.rm(temp, { force: true }))
  try {
    const tgz = Readable.from(tarCreate({ gzip: true, cwd: dir, portable: true, noDirRecurse: true }, [...names]))
    const sealed = await encrypter.encrypt(Readable.toWeb(tgz) as unknown as ReadableStream<Uint8Array>)
    await pipeline(Readable.fromWeb(sealed as unknown as WebReadableStream<Uint8Array>), createWriteStream(temp, { flags: 'wx', mode: 0o600 }))
    await fs.chmod(temp, 0o600)
    await syncFile(temp)
    try {
      await fs.link(temp, file)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw new RekeyError('ERR_CONFIG', `${file} already exists`)
      throw err
    }
    await syncDirectory(path.dirname(file))
    return (await fs.stat(file)).size
  } finally {
    await fs.rm(temp, { force: true })
    release()
  }
}

/** What a read produced: each file written into the directory, with its size and SHA-256. */
export type ExtractedFiles = Map<string, { bytes: number, sha256: string }>

function entryProblem(entry: ReadEntry, allowed: ReadonlySet<string>, seen: ReadonlySet<string>): string | null {
  const name = entry.path
  if (entry.type !== 'File') return `${JSON.stringify(name)} is a ${entry.type}, not a regular file`
  if (path.isAbsolute(name) || name.split(/[\\/]/).includes('..')) return `${JSON.stringify(name)} points outside the archive`
  if (!allowed.has(name)) return `${JSON.stringify(name)} is not a file a rekey backup holds`
  if (seen.has(name)) return `${JSON.stringify(name)} appears twice`
  return null
}

/**
 * Decrypts `file` and writes its entries into `into` (a fresh, empty directory), refusing the
 * whole archive at the first entry that is not one of `allowed` as a regular file.
 * Wrong passphrase or identity, a changed byte, a truncated file: BackupError.
 */
export async function readArchive(file: string, unseal: UnsealOptions, allowed: ReadonlySet<string>, into: string): Promise<ExtractedFiles> {
  const decrypter = new Decrypter()
  if (unseal.passphrase !== undefined && unseal.passphrase !== '') decrypter.addPassphrase(unseal.passphrase)
  for (const identity of unseal.identities ?? []) decrypter.addIdentity(identity)
  if ((unseal.passphrase ?? '') === '' && (unseal.identities ?? []).length === 0) {
    throw new RekeyError('ERR_CONFIG', 'set REKEY_BACKUP_PASSPHRASE or give --identity FILE to open the archive')
  }
  // A directory or a device would otherwise fail to decrypt, read as a wrong passphrase (exit 1).
  const stat = await fs.stat(file).catch(() => null)
  if (stat === null) throw new RekeyError('ERR_CONFIG', `${file} does not exist: give the path of a rekey-backup-*.tgz.age file`)
  if (!stat.isFile()) throw new RekeyError('ERR_CONFIG', `${file} is ${stat.isDirectory() ? 'a directory' : 'not a regular file'}: give the path of a rekey-backup-*.tgz.age file`)
  let plain: ReadableStream<Uint8Array>
  try {
    plain = await decrypter.decrypt(Readable.toWeb(createReadStream(file)) as unknown as ReadableStream<Uint8Array>)
  } catch (err) {
    // Never age's own message: for a file that is not an archive it quotes the file's first line (an .env, a master.key).
    throw new BackupError('the archive cannot be decrypted: wrong passphrase or identity, or not an age-encrypted rekey archive', { cause: err })
  }
  const files: ExtractedFiles = new Map()
  const writes: Promise<void>[] = []
  const entries: ReadEntry[] = []
  let problem: string | null = null
  const source = Readable.fromWeb(plain as unknown as WebReadableStream<Uint8Array>)
  const parser = new Parser({ strict: true })
  parser.on('entry', (entry: ReadEntry) => {
    const why = problem ?? entryProblem(entry, allowed, new Set(files.keys()))
    if (why !== null) {
      problem = why
      entry.resume()
      return
    }
    entries.push(entry)
    const hash = createHash('sha256')
    const record = { bytes: 0, sha256: '' }
    files.set(entry.path, record)
    entry.on('data', (chunk: Buffer) => { hash.update(chunk); record.bytes += chunk.length })
    writes.push((async () => {
      const out = path.join(into, entry.path)
      await pipeline(entry, createWriteStream(out, { flags: 'wx', mode: 0o600 }))
      await syncFile(out)
      record.sha256 = hash.digest('hex')
    })())
  })
  const parsed = new Promise<void>((resolve, reject) => {
    parser.on('error', reject)
    parser.on('end', resolve)
  })
  // A parse error (a decompression bomb, a bad header) can come while the loop below waits on
  // the decrypter, not on `parsed`: handle it at once, and stop reading the rest of the archive.
  parsed.catch((err: unknown) => { source.destroy(err as Error) })
  try {
    for await (const chunk of source) {
      // Backpressure; a parse error ends the wait too.
      if (!parser.write(chunk as Buffer)) await Promise.race([new Promise((resolve) => parser.once('drain', resolve)), parsed])
    }
    parser.end()
    await parsed
    await Promise.all(writes)
  } catch (err) {
    // An aborted parser never ends the entries it started: end them, or their writes wait forever.
    for (const entry of entries) entry.destroy(err as Error)
    await Promise.allSettled(writes)
    if (err instanceof BackupError) throw err
    throw new BackupError(`the archive is damaged: ${(err as Error).message}`, { cause: err })
  }
  if (problem !== null) throw new BackupError(`the archive is refused: ${problem as string}`)
  return files
}
