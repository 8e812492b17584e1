/** Stores with data, archives made by hand (honest and malicious), and a CLI runner for the backup tests. */
import { randomBytes, randomUUID } from 'node:crypto'
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { Readable } from 'node:stream'
import { Encrypter } from 'age-encryption'
import { create as tarCreate } from 'tar'
import { main } from '../../src/cli/main.ts'
import { openStore } from '../../src/store/open.ts'
import type { Store } from '../../src/store/store.ts'

export const PASSPHRASE = 'correct-horse-battery-staple-42'
/** The master key of the test stores: archives are authenticated under it. */
export const MASTER_KEY = randomBytes(32)
/** REKEY_MASTER_KEY for CLI runs on the test stores. */
export const MASTER_ENV = Object.freeze({ REKEY_MASTER_KEY: MASTER_KEY.toString('base64') })
/** A low scrypt work factor so tests do not spend a second per archive; the header carries it. */
export const FAST = { passphrase: PASSPHRASE, scryptLogN: 10 }

export async function run(argv: string[], env: Record<string, string | undefined> = {}): Promise<{ code: number, stdout: string, stderr: string }> {
  let stdout = ''
  let stderr = ''
  const code = await main(argv, { stdout: (t) => { stdout += t }, stderr: (t) => { stderr += t }, env })
  return { code, stdout, stderr }
}

export function tempDir(t: { after: (fn: () => void) => void }): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'rekey-backup-test-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** Adds `users` users, each with one session and refresh token. */
export async function fill(store: Store, users: number, now = Date.now()): Promise<void> {
  for (let i = 0; i < users; i++) {
    const userId = randomUUID()
    await store.createUser({ id: userId, email: `${userId}@example.test`, passwordHash: '$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA', createdAt: now })
    await store.createFamily({ familyId: randomUUID(), userId, createdAt: now, expiresAt: now + 86_400_000, token: { tokenHash: randomUUID().replace(/-/g, ''), kid: 'kid-r1', issuedAt: now, expiresAt: now + 86_400_000 } })
  }
}

/** Encrypts a gzipped tar of `names` from `dir` (paths kept as given) with the test passphrase. */
/** A temp directory with a SQLite store of `users` users at `store` inside it (closed again). */
export async function filledStore(t: { after: (fn: () => void) => void }, users: number, store = 'rekey.db'): Promise<{ dir: string, storePath: string }> {
  const dir = tempDir(t)
  const storePath = path.join(dir, store)
  const opened = await openStore(storePath)
  await fill(opened, users)
  await opened.close()
  // As `rekey serve` leaves an embedded store: its master key beside it.
  writeFileSync(path.join(path.dirname(storePath), 'master.key'), `${MASTER_KEY.toString('base64')}\n`, { mode: 0o600 })
  return { dir, storePath }
}

export async function sealTgz(dir: string, names: string[], file: string): Promise<void> {
  const tgz = Readable.from(tarCreate({ gzip: true, cwd: dir, portable: true, preservePaths: true, noDirRecurse: true }, names))
  const chunks: Buffer[] = []
  for await (const c of tgz) chunks.push(c as Buffer)
  const e = new Encrypter()
  e.setPassphrase(PASSPHRASE)
  e.setScryptWorkFactor(10)
  await writeFile(file, await e.encrypt(new Uint8Array(Buffer.concat(chunks))))
}

/** A directory with a manifest-looking file, a traversal target and a symlink, for malicious archives. */
export function maliciousDir(root: string): string {
  const dir = path.join(root, 'evil', 'inner')
  mkdirSync(dir, { recursive: true })
  writeFileSync(path.join(dir, 'manifest.json'), '{}')
  writeFileSync(path.join(root, 'evil', 'escape.txt'), 'escaped')
  symlinkSync('/etc/passwd', path.join(dir, 'store.sqlite'))
  return dir
}
