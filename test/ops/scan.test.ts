import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdirSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { before, describe, test } from 'node:test'
import { main } from '../../src/cli/main.ts'
import { keyInputOf, newManagedKey } from '../../src/service/keys/keys.ts'
import { openStore } from '../../src/store/open.ts'
import { commitAll, git, leakyRepo, secretTails, tempDir, write, type Planted } from './scan-fixtures.ts'

async function run(argv: string[], env: Record<string, string | undefined> = {}): Promise<{ code: number, stdout: string, stderr: string }> {
  let stdout = ''
  let stderr = ''
  const code = await main(argv, { stdout: (t) => { stdout += t }, stderr: (t) => { stderr += t }, env })
  return { code, stdout, stderr }
}

interface JsonFinding { rule: string, file: string, line: number, commit?: string, fingerprint: string, live: boolean, preview: string, message: string }

function assertNoSecret(planted: Planted, ...outputs: string[]): void {
  for (const out of outputs) {
    for (const tail of secretTails(planted)) assert.ok(!out.includes(tail), `output holds a secret: ...${tail.slice(0, 6)}`)
  }
}

describe('rekey scan', () => {
  let root = ''
  let envFile = ''
  let planted: Planted
  let slackCommit = ''

  before(() => {
    const dir = tempDir({ after: (fn) => process.on('exit', fn) })
    // No default store here: the scan must not find ./.rekey/rekey.db of the checkout.
    process.chdir(dir)
    root = path.join(dir, 'repo')
    mkdirSync(root)
    ;({ planted, slackCommit } = leakyRepo(root))
    envFile = path.join(dir, 'prod.env')
    writeFileSync(envFile, `JWT_SECRET=${planted.liveJwtSecret}\nPORT=8080\n`)
  })

  test('the working tree: every planted credential, the tracked .env, and the live secret; nothing removed or ignored', async () => {
    const { code, stdout, stderr } = await run(['--env-file', envFile, 'scan', root, '--format', 'json'])
    assert.equal(code, 1)
    assertNoSecret(planted, stdout, stderr)
    const { findings } = JSON.parse(stdout) as { findings: JsonFinding[] }
    const at = (rule: string): string[] => findings.filter((f) => f.rule === rule).map((f) => `${f.file}:${f.line}`)
    assert.deepEqual(at('@secretlint/secretlint-rule-aws'), ['config/aws.js:3'])
    assert.deepEqual(at('@secretlint/secretlint-rule-privatekey'), ['keys/id_rsa.pem:1'])
    assert.deepEqual(at('@secretlint/secretlint-rule-database-connection-string'), ['config/db.txt:2'])
    assert.deepEqual(at('@secretlint/secretlint-rule-github'), ['scripts/deploy.sh:2'])
    assert.deepEqual(at('rekey/tracked-env-file'), ['.env:1'])
    assert.deepEqual(at('rekey/live-secret'), ['.env:2', 'src/keys.js:1'])
    assert.equal(at('@secretlint/secretlint-rule-slack').length, 0, 'removed, ignored and node_modules files are not in the working tree scan')
    const live = findings.filter((f) => f.live)
    assert.equal(live.length, 2)
    // The live secret is one of the env file's: the advice is that file's env-file emergency.
    for (const f of live) assert.ok(f.message.includes(`run \`rekey --env ${envFile} emergency --reason "leaked"\` now`), f.message)
    for (const f of findings) {
      assert.match(f.fingerprint, /^[0-9a-f]{32}$/)
      assert.ok(f.preview.length <= 5 || f.preview.startsWith('kid '), `preview ${f.preview} is at most 4 characters and …`)
      assert.equal(f.commit, undefined)
    }
  })

  test('text output: masked previews, the emergency advice, exit 1', async () => {
    const { code, stdout, stderr } = await run(['--env-file', envFile, 'scan', root])
    assert.equal(code, 1)
    assertNoSecret(planted, stdout, stderr)
    assert.match(stdout, /^LIVE src\/keys\.js:1 {2}rekey\/live-secret {2}kid /m)
    assert.match(stdout, /config\/aws\.js:3 {2}@secretlint\/secretlint-rule-aws {2}k9Xq…/)
    assert.match(stdout, /Run the emergency command each one names now \(`rekey emergency`, or `rekey --env FILE emergency` for a secret of an env file\)/)
    assert.match(stderr, /finding\(s\), live secrets among them/)
  })

  test('--history: the removed Slack token, with its commit, file and line', async () => {
    const { code, stdout, stderr } = await run(['scan', root, '--history', '--format', 'json'])
    assert.equal(code, 1)
    assertNoSecret(planted, stdout, stderr)
    const { findings, summary } = JSON.parse(stdout) as { findings: JsonFinding[], summary: { commits: number } }
    assert.equal(summary.commits, 4)
    const slack = findings.filter((f) => f.rule === '@secretlint/secretlint-rule-slack')
    assert.deepEqual(slack.map((f) => [f.file, f.line, f.commit]), [['notes.txt', 1, slackCommit]])
    const env = findings.find((f) => f.rule === 'rekey/tracked-env-file')
    assert.equal(env?.file, '.env')
    assert.match(env?.commit ?? '', /^[0-9a-f]{40}$/)
    assert.ok(findings.some((f) => f.rule === '@secretlint/secretlint-rule-privatekey' && f.file === 'keys/id_rsa.pem' && f.line === 1))
    // Without --env-file and store nothing is known to be live.
    assert.ok(findings.every((f) => !f.live))
  })

  test('--history sees commits on every ref, not only HEAD', async (t) => {
    const dir = tempDir(t)
    git(dir, 'init', '-q', '-b', 'main')
    write(dir, 'a.txt', 'hello\n')
    commitAll(dir, 'one')
    git(dir, 'checkout', '-q', '-b', 'side')
    write(dir, 'b.txt', `token=${planted.githubToken}\n`)
    commitAll(dir, 'two')
    git(dir, 'checkout', '-q', 'main')
    const clean = await run(['scan', dir])
    assert.equal(clean.code, 0, clean.stdout)
    assert.match(clean.stdout, /no leaks found in 1 files/)
    const history = await run(['scan', dir, '--history'])
    assert.equal(history.code, 1)
    assert.match(history.stdout, /^b\.txt:1 @ [0-9a-f]{12} {2}@secretlint\/secretlint-rule-github {2}ghp_…$/m)
  })

  test('SARIF 2.1.0: rules, results with locations, levels and partial fingerprints', async () => {
    const { code, stdout } = await run(['--env-file', envFile, 'scan', root, '--format', 'sarif'])
    assert.equal(code, 1)
    assertNoSecret(planted, stdout)
    const sarif = JSON.parse(stdout) as { version: string, $schema: string, runs: Array<{ tool: { driver: { name: string, rules: Array<{ id: string }> } }, results: Array<Record<string, any>> }> }
    assert.equal(sarif.version, '2.1.0')
    assert.match(sarif.$schema, /sarif-2\.1\.0/)
    assert.equal(sarif.runs.length, 1)
    const run0 = sarif.runs[0]!
    const ruleIds = run0.tool.driver.rules.map((r) => r.id)
    assert.ok(ruleIds.includes('rekey/live-secret'))
    assert.equal(run0.results.length, 7)
    for (const r of run0.results) {
      assert.ok(ruleIds.includes(r.ruleId))
      assert.equal(run0.tool.driver.rules[r.ruleIndex]?.id, r.ruleId)
      assert.ok(['error', 'warning'].includes(r.level))
      assert.equal(typeof r.message.text, 'string')
      const loc = r.locations[0].physicalLocation
      assert.equal(typeof loc.artifactLocation.uri, 'string')
      assert.ok(Number.isInteger(loc.region.startLine) && loc.region.startLine >= 1)
      assert.match(r.partialFingerprints['rekeyFingerprint/v1'], /^[0-9a-f]{32}$/)
    }
  })

  test('a baseline suppresses known findings by fingerprint; a new leak still fails', async (t) => {
    const dir = tempDir(t)
    const baseline = path.join(dir, 'baseline.json')
    const first = await run(['--env-file', envFile, 'scan', root, '--format', 'json'])
    writeFileSync(baseline, first.stdout)
    const again = await run(['--env-file', envFile, 'scan', root, '--baseline', baseline])
    assert.equal(again.code, 0, again.stdout)
    assert.match(again.stdout, /no leaks found in \d+ files; 7 suppressed by the baseline/)
    // The history's findings of the same values in the same files share the fingerprints.
    const history = await run(['scan', root, '--history', '--baseline', baseline, '--format', 'json'])
    const left = (JSON.parse(history.stdout) as { findings: JsonFinding[] }).findings.map((f) => f.rule)
    assert.deepEqual(left, ['@secretlint/secretlint-rule-slack'])
  })

  test('a live key of the managed store, opened with the master key, is reported as live', async (t) => {
    const dir = tempDir(t)
    const storePath = path.join(dir, 'store', 'rekey.db')
    const masterKey = randomBytes(32)
    const store = await openStore(storePath)
    const key = newManagedKey(masterKey, 'access', Date.now())
    await store.insertKey(key, { expectedVersion: 0 })
    const secret = (keyInputOf(masterKey, await store.listKeys().then((keys) => keys[0]!)).secret as Buffer).toString('base64url')
    await store.close()
    const repo = path.join(dir, 'repo')
    write(repo, 'debug.json', `{ "k": "${secret}" }\n`)
    const { code, stdout, stderr } = await run(['--store', storePath, 'scan', repo, '--format', 'json'], { REKEY_MASTER_KEY: masterKey.toString('base64') })
    assert.equal(code, 1, stderr)
    assert.ok(!stdout.includes(secret.slice(4)) && !stderr.includes(secret.slice(4)))
    const { findings } = JSON.parse(stdout) as { findings: JsonFinding[] }
    assert.deepEqual(findings.map((f) => [f.rule, f.file, f.line, f.live, f.preview]), [['rekey/live-secret', 'debug.json', 1, true, `kid ${key.kid}`]])
    // Without the master key the store's keys cannot be checked: said on stderr, not a failure.
    const blind = await run(['--store', storePath, 'scan', repo])
    assert.equal(blind.code, 0)
    assert.match(blind.stderr, /were not checked: no usable master key/)
  })

  test('exit codes: 0 clean, 2 for a bad path, a bad format, a bad baseline, --history outside git', async (t) => {
    const dir = tempDir(t)
    write(dir, 'hello.txt', 'nothing to see\n')
    assert.equal((await run(['scan', dir])).code, 0)
    assert.equal((await run(['scan', dir, '--format', 'json'])).stdout.includes('"findings": []'), true)
    assert.equal((await run(['scan', path.join(dir, 'missing')])).code, 2)
    assert.equal((await run(['scan', path.join(dir, 'hello.txt')])).code, 2)
    assert.equal((await run(['scan', dir, '--format', 'xml'])).code, 2)
    assert.equal((await run(['scan', dir, '--baseline', path.join(dir, 'hello.txt')])).code, 2)
    assert.equal((await run(['scan', dir, '--history'])).code, 2)
    assert.equal((await run(['--env-file', path.join(dir, 'none.env'), 'scan', dir])).code, 2)
  })
})

describe('rekey scan: the data keys of an env file', () => {
  test('ENCRYPTION_KEY, ENCRYPTION_KEY_PREV and ENCRYPTION_KEYS are live secrets, with the data key\'s remedy (rotate, rewrap, finalize), never emergency', async (t) => {
    const dir = tempDir(t)
    const current = randomBytes(32).toString('hex')
    const previous = 'a-passphrase-that-is-long-enough-to-be-a-data-key'
    const listed = randomBytes(32)
    const envFile = path.join(dir, 'app.env')
    writeFileSync(envFile, `ENCRYPTION_KEY=${current}\nENCRYPTION_KEY_PREV="${previous}"\n`)
    const listFile = path.join(dir, 'list.env')
    writeFileSync(listFile, `ENCRYPTION_KEYS=${JSON.stringify([{ kty: 'oct', kid: 'k1', k: listed.toString('base64url') }])}\n`)
    const repo = path.join(dir, 'repo')
    mkdirSync(repo)
    writeFileSync(path.join(repo, 'a.js'), `const key = '${current}'\nconst old = '${previous}'\n`)
    writeFileSync(path.join(repo, 'b.js'), `export const k = '${listed.toString('hex')}'\n`)
    for (const [file, expected] of [[envFile, 2], [listFile, 1]] as const) {
      const { code, stdout, stderr } = await run(['--env', file, '--json', 'scan', repo])
      assert.equal(code, 1, stderr)
      const live = (JSON.parse(stdout) as { findings: { live: boolean, message: string }[] }).findings.filter((f) => f.live)
      assert.equal(live.length, expected, stdout)
      for (const f of live) {
        assert.match(f.message, new RegExp(`^a live rekey data key \\(ENCRYPTION_KEY.* in ${file.replaceAll('/', '\\/')}, kid .*run \`rekey --env ${file.replaceAll('/', '\\/')} rotate --secret ENCRYPTION_KEY\` now`))
        assert.doesNotMatch(f.message, /run `rekey[^`]*emergency/)
      }
      for (const out of [stdout, stderr]) {
        assert.ok(!out.includes(current) && !out.includes(previous) && !out.includes(listed.toString('hex')), 'no data key in the output')
      }
      assert.match(stderr, /a data key: run rekey rotate --secret ENCRYPTION_KEY/)
    }
  })
})
