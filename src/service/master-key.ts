/**
 * The master key: from REKEY_MASTER_KEY, or, on the embedded SQLite store only, generated once
 * into `master.key` beside the database file (0600), with a warning that production must set it.
 */
import { randomBytes } from 'node:crypto'
import { constants, promises as fs } from 'node:fs'
import path from 'node:path'
import type { RekeyConfig } from '../config/load.ts'
import { isPostgresLocation } from '../config/load.ts'
import { RekeyError } from '../core/errors.ts'

/** Where the generated master key of an embedded store lives. */
export function masterKeyFileOf(storePath: string): string {
  return path.join(path.dirname(path.resolve(storePath)), 'master.key')
}

async function readKeyFile(file: string): Promise<Buffer> {
  const bytes = Buffer.from((await fs.readFile(file, 'utf8')).trim(), 'base64')
  if (bytes.length !== 32) throw new RekeyError('ERR_CONFIG', `${file} does not hold a 32-byte base64 master key`)
  return bytes
}

/**
 * The master key bytes, and whether this call generated the key file. Creation is atomic and
 * happens once: a temp file is hard-linked into place, so of two processes starting at once
 * one creates it and both read the same key.
 */
export async function resolveMasterKey(config: RekeyConfig): Promise<{ key: Buffer, generated: string | null }> {
  if (config.masterKey !== undefined) return { key: config.masterKey.reveal(), generated: null }
  if (isPostgresLocation(config.store)) throw new RekeyError('ERR_CONFIG', 'REKEY_MASTER_KEY is required with a PostgreSQL store')
  const file = masterKeyFileOf(config.store)
  try {
    return { key: await readKeyFile(file), generated: null }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
  }
  await fs.mkdir(path.dirname(file), { recursive: true, mode: 0o700 })
  const temp = `${file}.${randomBytes(6).toString('hex')}.tmp`
  const handle = await fs.open(temp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600)
  try {
    await handle.writeFile(`${randomBytes(32).toString('base64')}\n`, 'utf8')
    await handle.sync()
  } finally {
    await handle.close()
  }
  let generated: string | null = file
  try {
    await fs.link(temp, file)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
    generated = null // another process won the race: use its key
  } finally {
    await fs.rm(temp, { force: true })
  }
  return { key: await readKeyFile(file), generated }
}
