/**
 * An application that encrypts a column with the store's managed data keys, as a team would
 * run it: `Cipher.fromStore()` (REKEY_STORE, REKEY_MASTER_KEY from its environment), a SQLite
 * table `items(id, body)` in APP_DB with ROWS rows, each encrypted with its id as associated
 * data. It keeps rewriting random rows (`v<n>-<id>`) until SIGTERM, remembering what it last
 * wrote to each. Lines on stdout: `ready KID`; `kid KID` whenever its cipher's current key
 * changes; on SIGTERM one JSON line `{ rows, lost, failed, writes, kids }` (every row decrypted
 * and compared with what it last wrote), then it closes the cipher and exits 0.
 */
import { DatabaseSync } from 'node:sqlite'
import { Cipher } from '../../src/crypt.ts'

const cipher = await Cipher.fromStore(undefined, { name: process.env.APP_NAME ?? 'cipher-app' })
const db = new DatabaseSync(process.env.APP_DB as string)
db.exec('PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 10000; CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY, body TEXT)')
const rows = Number(process.env.ROWS ?? 500)
const expected = new Map<number, string>()
const count = (db.prepare('SELECT count(*) AS n FROM items').get() as { n: number }).n
if (count === 0) {
  const insert = db.prepare('INSERT INTO items (id, body) VALUES (?, ?)')
  db.exec('BEGIN')
  for (let id = 1; id <= rows; id++) {
    expected.set(id, `v0-${id}`)
    insert.run(id, cipher.encrypt(`v0-${id}`, { aad: String(id) }))
  }
  db.exec('COMMIT')
} else {
  for (const r of db.prepare('SELECT id, body FROM items').all() as { id: number, body: string }[]) expected.set(r.id, cipher.decrypt(r.body, { aad: String(r.id) }).toString())
}
process.stdout.write(`ready ${cipher.currentKid}\n`)

let kid = cipher.currentKid
let writes = 0
const update = db.prepare('UPDATE items SET body = ? WHERE id = ?')
const timer = setInterval(() => {
  if (cipher.currentKid !== kid) {
    kid = cipher.currentKid
    process.stdout.write(`kid ${kid}\n`)
  }
  for (let i = 0; i < 5; i++) {
    const id = 1 + Math.floor(Math.random() * expected.size)
    const value = `v${++writes}-${id}`
    update.run(cipher.encrypt(value, { aad: String(id) }), id)
    expected.set(id, value)
  }
}, 5)

process.on('SIGTERM', () => {
  clearInterval(timer)
  let lost = 0
  let failed = 0
  const kids: Record<string, number> = {}
  for (const r of db.prepare('SELECT id, body FROM items').all() as { id: number, body: string }[]) {
    kids[Cipher.kidOf(r.body)] = (kids[Cipher.kidOf(r.body)] ?? 0) + 1
    try {
      if (cipher.decrypt(r.body, { aad: String(r.id) }).toString() !== expected.get(r.id)) lost++
    } catch {
      failed++
    }
  }
  process.stdout.write(`${JSON.stringify({ rows: expected.size, lost, failed, writes, kids })}\n`)
  db.close()
  void cipher.close().then(() => process.exit(0))
})
