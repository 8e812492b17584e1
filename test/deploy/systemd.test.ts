/**
 * The systemd unit: `systemd-analyze verify` when it is installed (it is here; without it the
 * verification is skipped visibly), and its keys parsed and checked either way.
 */
import assert from 'node:assert/strict'
import { execFile, execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { describe, test } from 'node:test'

const UNIT = path.resolve(import.meta.dirname, '../../examples/systemd/rekey.service')

/** The unit's sections, each key with every value it is given (systemd keys can repeat). */
function parseUnit(text: string): Map<string, Map<string, string[]>> {
  const sections = new Map<string, Map<string, string[]>>()
  let current: Map<string, string[]> | undefined
  for (const raw of text.split('\n')) {
    const line = raw.trim()
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue
    const header = /^\[([A-Za-z]+)\]$/.exec(line)
    if (header !== null) {
      current = new Map()
      sections.set(header[1] as string, current)
      continue
    }
    const kv = /^([A-Za-z]+)=(.*)$/.exec(line)
    assert.ok(kv !== null && current !== undefined, `not a key=value line in a section: ${line}`)
    current.set(kv[1] as string, [...(current.get(kv[1] as string) ?? []), kv[2] as string])
  }
  return sections
}

function hasSystemdAnalyze(): boolean {
  try {
    execFileSync('systemd-analyze', ['--version'], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

describe('examples/systemd/rekey.service', () => {
  const unit = parseUnit(readFileSync(UNIT, 'utf8'))
  const service = unit.get('Service') ?? new Map<string, string[]>()
  const one = (key: string): string | undefined => service.get(key)?.at(-1)

  test('has [Unit], [Service] and [Install] wanted by multi-user.target', () => {
    assert.deepEqual([...unit.keys()], ['Unit', 'Service', 'Install'])
    assert.equal(unit.get('Install')?.get('WantedBy')?.[0], 'multi-user.target')
  })

  test('reload sends SIGHUP to the main process; stop is SIGTERM with time to drain', () => {
    assert.equal(one('ExecReload'), '/bin/kill -HUP $MAINPID')
    assert.equal(one('KillSignal'), 'SIGTERM')
    assert.ok(Number(one('TimeoutStopSec')) > 10, 'longer than the service\'s 10 s drain')
    assert.match(one('ExecStart') ?? '', /node -- \S+rekey\.js --env \/etc\/rekey\/rekey\.env serve$/, 'rekey\'s --env, which Node never reads (issue 10, item 5)')
    assert.equal(one('Restart'), 'always')
  })

  test('secrets come from an EnvironmentFile; the unit itself holds none', () => {
    assert.equal(one('EnvironmentFile'), '/etc/rekey/rekey.env')
    for (const value of service.get('Environment') ?? []) assert.doesNotMatch(value, /SECRET|MASTER_KEY|PASSWORD/)
  })

  test('is hardened: no new privileges, read-only system, no capabilities, own user', () => {
    for (const [key, value] of [['NoNewPrivileges', 'true'], ['ProtectSystem', 'strict'], ['ProtectHome', 'true'], ['PrivateTmp', 'true'], ['CapabilityBoundingSet', ''], ['User', 'rekey'], ['UMask', '0077']] as const) {
      assert.equal(one(key), value, key)
    }
    assert.ok((service.get('SystemCallFilter') ?? []).includes('@system-service'))
  })

  test('systemd-analyze verify accepts it without a warning', { skip: hasSystemdAnalyze() ? false : 'systemd-analyze is not installed; the unit was only parsed' }, async (t) => {
    // A copy whose ExecStart points at this machine's node, since verify checks the binary exists.
    const dir = mkdtempSync(path.join(os.tmpdir(), 'rekey-unit-'))
    t.after(() => rmSync(dir, { recursive: true, force: true }))
    const copy = path.join(dir, 'rekey.service')
    writeFileSync(copy, readFileSync(UNIT, 'utf8').replace('/usr/bin/node', process.execPath))
    const { code, stderr } = await new Promise<{ code: number, stderr: string }>((resolve) => {
      execFile('systemd-analyze', ['verify', copy], { timeout: 20_000 }, (err, _stdout, stderr) => {
        resolve({ code: err === null ? 0 : Number((err as { code?: unknown }).code ?? 1), stderr })
      })
    })
    assert.equal(code, 0, stderr)
    assert.doesNotMatch(stderr, /Unknown|Invalid|ignoring|Failed/i)
  })
})
