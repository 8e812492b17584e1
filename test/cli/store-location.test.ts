/**
 * A store location means one store (issue 11, item 2), through the real CLI:
 * - a location that is neither a postgres:// URL nor a file path is refused with a
 *   did-you-mean, and no directory is created for it;
 * - `rekey --env-file F serve` uses the store beside F.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { describe, test } from 'node:test'
import { runBin, runCli, serveOnce, tempDir } from './helpers.ts'

describe('a store location means one store', () => {
  test('postgress:// and mysql:// are refused with a did-you-mean; no directory is created; the password is not echoed', async (t) => {
    const dir = tempDir(t)
    const typo = 'postgress://postgres:hunter2secret@127.0.0.1/x'
    const served = await serveOnce(['--store', typo, 'serve', '--port', '0'], { cwd: dir })
    assert.equal(served.listening, null)
    assert.equal(served.code, 2, served.stderr)
    assert.match(served.stderr, /ERR_CONFIG/)
    assert.match(served.stderr, /did you mean postgres:\/\//)
    assert.doesNotMatch(served.stderr + served.stdout, /hunter2secret/)

    const mysql = await runCli(['--store', 'mysql://root@db/rekey', 'record', 'SMTP_PASSWORD'], {})
    assert.equal(mysql.code, 2, mysql.stderr)
    assert.match(mysql.stderr, /^rekey: ERR_CONFIG: [\s\S]*"mysql:\/\/" is not supported[\s\S]*did you mean postgres:\/\//)

    for (const [argv, env] of [
      [['status'], { REKEY_STORE: 'postgress://postgres@127.0.0.1/x' }],
      [['audit'], { REKEY_STORE: 'postgresql:/127.0.0.1/x' }],
      [['--json', 'due'], { REKEY_STORE: 'pg://127.0.0.1/x' }],
      [['backup', '--recipient', 'age1x'], { REKEY_STORE: 'sqlite:///var/lib/rekey.db' }],
    ] as const) {
      const r = await runCli([...argv], env)
      assert.equal(r.code, 2, `${argv.join(' ')}: ${r.stderr}`)
      assert.match(r.stderr, /ERR_CONFIG[\s\S]*did you mean/, argv.join(' '))
    }

    writeFileSync(path.join(dir, 'rekey.config.json'), JSON.stringify({ store: 'mysql://root@db/rekey' }))
    const fromFile = await runBin(['due'], { cwd: dir })
    assert.equal(fromFile.code, 2, fromFile.stderr)
    assert.match(fromFile.stderr, /rekey\.config\.json "store"/)

    assert.deepEqual(readdirSync(dir).sort(), ['rekey.config.json'], 'nothing was created in the working directory')
  })

  test('rekey --env-file F serve uses the store beside F, as every env-file command does', async (t) => {
    const dir = tempDir(t)
    const conf = path.join(dir, 'conf')
    mkdirSync(conf)
    const file = path.join(conf, 'rekey.env')
    writeFileSync(file, `JWT_SECRET=${randomBytes(32).toString('base64url')}\nJWT_REFRESH_SECRET=${randomBytes(32).toString('base64url')}\n`, { mode: 0o600 })
    const served = await serveOnce(['--env-file', file, 'serve', '--port', '0'], { cwd: dir, env: { REKEY_SCHEDULER: 'off' } })
    assert.ok(served.listening !== null, served.stderr + served.stdout)
    assert.equal(served.listening.store, path.join(conf, '.rekey', 'rekey.db'))
    assert.equal(existsSync(path.join(dir, '.rekey')), false, 'nothing in ./.rekey')
    const rotated = await runCli(['--env-file', file, '--json', 'rotate'], {})
    assert.equal(rotated.code, 0, rotated.stderr)
    assert.equal((JSON.parse(rotated.stdout) as { audit: { store: string } }).audit.store, path.join(conf, '.rekey', 'rekey.db'), 'the same store as serve')
  })
})
