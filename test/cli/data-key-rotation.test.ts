/**
 * ENCRYPTION_KEY in env-file mode: rotate (next key encrypts, the old one decrypts), rollback,
 * status with the counts per key, finalize and `rotate --hard` judged on counted values,
 * and the managed form refused with a usage error. The file is read back by dotenv.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { readFileSync, statSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import { describe, it } from 'node:test'
import dotenv from 'dotenv'
import { Cipher } from '../../src/crypt.ts'
import { kidOfText } from '../../src/core/data-keys.ts'
import { runCli, tempDir } from './helpers.ts'

function setup(t: { after: (fn: () => void) => void }): { envFile: string, db: string, rekey: (...args: string[]) => ReturnType<typeof runCli>, read: () => Record<string, string> } {
  const dir = tempDir(t)
  const envFile = path.join(dir, '.env')
  writeFileSync(envFile, `# keys\nexport ENCRYPTION_KEY=${randomBytes(32).toString('hex')}\nOTHER=kept # comment\nREKEY_MASTER_KEY=${randomBytes(32).toString('base64')}\n`, { mode: 0o640 })
  const db = path.join(dir, 'app.db')
  const sqlite = new DatabaseSync(db)
  sqlite.exec('CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)')
  sqlite.close()
  return {
    envFile, db,
    rekey: (...args: string[]) => runCli(['--env-file', envFile, ...args], {}),
    read: () => dotenv.parse(readFileSync(envFile, 'utf8')),
  }
}

function insert(db: string, rows: Array<[number, string]>): void {
  const sqlite = new DatabaseSync(db)
  const stmt = sqlite.prepare('INSERT OR REPLACE INTO notes (id, body) VALUES (?, ?)')
  for (const [id, body] of rows) stmt.run(id, body)
  sqlite.close()
}

describe('rekey --env-file F rotate --secret ENCRYPTION_KEY', () => {
  it('rotates, rolls back and rotates again; the previous key decrypts throughout', async (t) => {
    const { envFile, rekey, read } = setup(t)
    const k1 = read().ENCRYPTION_KEY as string
    const v1 = Cipher.fromEnv(read()).encrypt('hello')
    const rotated = await rekey('rotate', '--secret', 'ENCRYPTION_KEY')
    assert.equal(rotated.code, 0, rotated.stderr)
    const afterRotate = read()
    assert.equal(afterRotate.ENCRYPTION_KEY_PREV, k1)
    assert.notEqual(afterRotate.ENCRYPTION_KEY, k1)
    assert.match(afterRotate.ENCRYPTION_KEY as string, /^[0-9a-f]{64}$/)
    assert.equal(afterRotate.OTHER, 'kept')
    assert.ok(!Number.isNaN(Date.parse(afterRotate.ENCRYPTION_KEY_ROTATED_AT as string)))
    assert.equal(statSync(envFile).mode & 0o777, 0o640, 'the rewritten file keeps its mode')
    assert.ok(!rotated.stdout.includes(afterRotate.ENCRYPTION_KEY as string) && !rotated.stdout.includes(k1))
    assert.match(rotated.stdout, new RegExp(`current +${kidOfText(afterRotate.ENCRYPTION_KEY as string)}`))
    // A data key's words, not a signing key's; no token lifetime; and what is left to do.
    assert.match(rotated.stdout, /^rotate ENCRYPTION_KEY: ENCRYPTION_KEY encrypts; ENCRYPTION_KEY_PREV decrypts until finalize$/m)
    assert.doesNotMatch(rotated.stdout, /token lifetime|signs|verifies/)
    assert.match(rotated.stdout, new RegExp(`^next: restart \\(or reload\\) every application that reads ${envFile}`, 'm'))
    assert.ok(rotated.stdout.includes(`rekey --env ${envFile} rewrap --url DB_URL --table T --column C --aad-columns A`))
    assert.ok(rotated.stdout.includes(`then rekey --env ${envFile} finalize --secret ENCRYPTION_KEY`))
    const cipher = Cipher.fromEnv(afterRotate)
    assert.equal(cipher.decrypt(v1).toString(), 'hello')
    const v2 = cipher.encrypt('world')

    const again = await rekey('rotate', '--secret', 'ENCRYPTION_KEY')
    assert.equal(again.code, 1, 'a second rotation waits for finalize')
    assert.match(again.stderr, /^rekey: ERR_UNSAFE: .*ENCRYPTION_KEY/)

    const rolledBack = await rekey('rollback', '--secret', 'ENCRYPTION_KEY')
    assert.equal(rolledBack.code, 0, rolledBack.stderr)
    assert.match(rolledBack.stdout, /^rollback ENCRYPTION_KEY: the previous key encrypts again; the rolled-back key decrypts until finalize$/m)
    assert.equal(read().ENCRYPTION_KEY, k1)
    assert.equal(read().ENCRYPTION_KEY_PREV, afterRotate.ENCRYPTION_KEY)
    const back = Cipher.fromEnv(read())
    assert.equal(back.decrypt(v2).toString(), 'world')
    assert.equal(Cipher.kidOf(back.encrypt('x')), kidOfText(k1))

    const text = await rekey('status')
    assert.match(text.stdout, /^ENCRYPTION_KEY  phase: grace/m)
    assert.doesNotMatch(text.stdout, /token lifetime/)
    const status = await rekey('--json', 'status')
    const data = JSON.parse(status.stdout).secrets.find((s: { secret: string }) => s.secret === 'ENCRYPTION_KEY')
    assert.deepEqual(data.keys.map((k: { state: string }) => k.state), ['current', 'previous'])
    assert.equal(data.phase, 'grace')
  })

  it('refuses finalize without counted evidence and while old values remain; --force overrides', async (t) => {
    const { db, envFile, rekey, read } = setup(t)
    const first = Cipher.fromEnv(read())
    insert(db, [[1, first.encrypt('a', { aad: '1' })], [2, first.encrypt('b', { aad: '2' })]])
    assert.equal((await rekey('rotate', '--secret', 'ENCRYPTION_KEY')).code, 0)

    const blind = await rekey('finalize', '--secret', 'ENCRYPTION_KEY')
    assert.equal(blind.code, 1)
    assert.match(blind.stderr, /ERR_UNSAFE: .*no encrypted column is registered/)

    const count = await rekey('rewrap', '--url', db, '--table', 'notes', '--column', 'body', '--aad-columns', 'id', '--count')
    assert.equal(count.code, 0, count.stderr)
    assert.match(count.stdout, new RegExp(`previous +${first.currentKid}  2 value\\(s\\)`))
    const held = await rekey('finalize', '--secret', 'ENCRYPTION_KEY')
    assert.equal(held.code, 1)
    assert.match(held.stderr, new RegExp(`notes\\.body .* still holds 2 value\\(s\\) of data key ${first.currentKid}`))
    assert.ok(read().ENCRYPTION_KEY_PREV !== undefined)

    const dry = await rekey('--json', 'rewrap', '--url', db, '--table', 'notes', '--column', 'body', '--dry-run')
    assert.equal(JSON.parse(dry.stdout).toRewrap, 2)
    // Forgetting --aad-columns fails every value: the error says that the aad is the likely cause.
    const noAad = await rekey('rewrap', '--url', db, '--table', 'notes', '--column', 'body')
    assert.equal(noAad.code, 1)
    assert.match(noAad.stderr, /^rekey: ERR_REFUSED: 2 value\(s\) did not decrypt \(rows 1, 2\): .*their aad differs from what the application passed to encrypt \(no --aad-columns was given/)
    const done = await rekey('rewrap', '--url', db, '--table', 'notes', '--column', 'body', '--aad-columns', 'id')
    assert.equal(done.code, 0, done.stderr)
    const status = await rekey('status')
    assert.match(status.stdout, new RegExp(`current +${Cipher.fromEnv(read()).currentKid}  2 value\\(s\\)`))
    // An instance still on the old key writes behind rewrap: finalize counts again and sees it.
    insert(db, [[3, first.encrypt('late', { aad: '3' })]])
    // A count (no aad needed) and a run whose values failed their aad do not unregister the aad columns.
    assert.equal((await rekey('rewrap', '--url', db, '--table', 'notes', '--column', 'body', '--count')).code, 0)
    assert.equal((await rekey('rewrap', '--url', db, '--table', 'notes', '--column', 'body')).code, 1)
    const late = await rekey('finalize', '--secret', 'ENCRYPTION_KEY')
    assert.equal(late.code, 1)
    assert.match(late.stderr, new RegExp(`still holds 1 value\\(s\\) of data key ${first.currentKid}`))
    // The remedy is the registering rewrap, pasted as is: the env file and the aad columns
    // included (without them it read no key, or failed every value's aad).
    const remedy = /: run (rekey .*)$/.exec(late.stderr.trim())?.[1] ?? ''
    assert.equal(remedy, `rekey --env ${envFile} rewrap --url ${db} --table notes --column body --aad-columns id`)
    const pasted = await runCli(remedy.split(' ').slice(1), {})
    assert.equal(pasted.code, 0, pasted.stderr)
    const ok = await rekey('finalize', '--secret', 'ENCRYPTION_KEY')
    assert.equal(ok.code, 0, ok.stderr)
    assert.match(ok.stdout, /^finalize ENCRYPTION_KEY: no registered column holds a value of the old key$/m)
    assert.doesNotMatch(ok.stdout, /token lifetime|grace window/)
    assert.equal(read().ENCRYPTION_KEY_PREV, undefined)
    const audit = await rekey('audit')
    assert.match(audit.stdout, /rewrap/)
    assert.match(audit.stdout, /\| finalize \| no registered column holds a value of the old key; encrypting kid [\w-]{16} -> [\w-]{16}, previous kid [\w-]{16} -> none \|/)
    // PWD (the shell's working directory) is no secret: the database path stays readable in the notes.
    assert.equal((await runCli(['--env-file', envFile, 'rewrap', '--url', db, '--table', 'notes', '--column', 'body', '--aad-columns', 'id'], { PWD: path.dirname(db) })).code, 0)
    // Masked as a live secret, PWD would show as `/tmp…[masked]/app.db` (a temp path may still meet the base64-run rule).
    const rows = (await rekey('audit')).stdout.split('\n').filter((l) => l.includes('| rewrap |'))
    assert.doesNotMatch(rows.at(-1) ?? '', /\[masked\]\/app\.db/)

    // --force skips the evidence: the operator takes the loss on purpose.
    assert.equal((await rekey('rotate', '--secret', 'ENCRYPTION_KEY')).code, 0)
    assert.equal((await rekey('finalize', '--secret', 'ENCRYPTION_KEY', '--force')).code, 0)
    assert.equal(read().ENCRYPTION_KEY_PREV, undefined)
  })

  it('rotate --hard is refused while values exist and allowed once the column is counted empty', async (t) => {
    const { db, envFile, rekey, read } = setup(t)
    insert(db, [[1, Cipher.fromEnv(read()).encrypt('a')]])
    const unregistered = await rekey('rotate', '--secret', 'ENCRYPTION_KEY', '--hard')
    assert.equal(unregistered.code, 1)
    await rekey('rewrap', '--url', db, '--table', 'notes', '--column', 'body', '--count')
    const before = readFileSync(envFile, 'utf8')
    const refused = await rekey('rotate', '--secret', 'ENCRYPTION_KEY', '--hard')
    assert.equal(refused.code, 1)
    assert.match(refused.stderr, /ERR_UNSAFE: rotate --hard of ENCRYPTION_KEY refused: notes\.body .* holds 1 value\(s\)/)
    assert.equal(readFileSync(envFile, 'utf8'), before)

    const sqlite = new DatabaseSync(db)
    sqlite.exec('DELETE FROM notes')
    sqlite.close()
    await rekey('rewrap', '--url', db, '--table', 'notes', '--column', 'body', '--count')
    const hard = await rekey('rotate', '--secret', 'ENCRYPTION_KEY', '--hard')
    assert.equal(hard.code, 0, hard.stderr)
    assert.equal(read().ENCRYPTION_KEY_PREV, undefined)
    assert.notEqual(read().ENCRYPTION_KEY, dotenv.parse(before).ENCRYPTION_KEY)
  })

  it('managed mode and bad input get usage errors, not stack traces', async (t) => {
    const { db, envFile, rekey } = setup(t)
    // Managed data keys are tested in test/ops/managed-data-key.test.ts; here, only what does not apply to them.
    // The env file forgotten: the error names it as the likely slip, not "generate a key" (that key would open nothing).
    const noKey = await runCli(['--store', path.join(path.dirname(envFile), 'none.db'), 'rewrap', '--url', db, '--table', 'notes', '--column', 'body'], {})
    assert.equal(noKey.code, 2)
    assert.match(noKey.stderr, /^rekey: ERR_CONFIG: no data key: ENCRYPTION_KEY is not in the environment and .* holds no managed data key\. Name the env file that holds ENCRYPTION_KEY \(rekey --env \.env rewrap \.\.\.\)/)
    const managed = await runCli(['rotate', '--secret', 'ENCRYPTION_KEY', '--publish-delay', '0'], {})
    assert.equal(managed.code, 2)
    assert.match(managed.stderr, /^rekey: .*--publish-delay apply to JWKS-published signing keys, not to ENCRYPTION_KEY/)
    const injected = await rekey('rewrap', '--url', db, '--table', 'notes; DROP TABLE notes', '--column', 'body', '--count')
    assert.equal(injected.code, 2)
    assert.match(injected.stderr, /^rekey: ERR_CONFIG: --table must be/)
    const missing = await rekey('rewrap', '--url', db, '--table', 'notes', '--column', 'nope', '--count')
    assert.equal(missing.code, 2)
    assert.match(missing.stderr, /has no column nope/)
    const noDb = await rekey('rewrap', '--url', `${db}.missing`, '--table', 'notes', '--column', 'body')
    assert.equal(noDb.code, 2)
    assert.ok(!noDb.stderr.includes('    at '))
  })
})
