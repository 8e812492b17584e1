/**
 * Every rewrite of an env file reads the same in rekey's parser, Node's (`process.loadEnvFile`,
 * the parser of `--env-file`) and the `dotenv` package, or is refused before anything is
 * written. Thousands of generated values drive the real rewrite function in-process through
 * rotate -> rollback -> finalize (the moved secret travels to _PREV and back); the real CLI
 * runs a handful in test/cli/env-file-safety.test.ts.
 */
import assert from 'node:assert/strict'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import util from 'node:util'
import { after, before, describe, it } from 'node:test'
import dotenv from 'dotenv'
import fc from 'fast-check'
import { parseEnv, updateEnvFile, type EnvChange } from '../../src/config/env-file.ts'
import { disagreements, dotenvReading, parseEnvDocument } from '../../src/config/env-syntax.ts'
import { envLayout, planFinalize, planRollback, planRotate, tokenLifetimeOf } from '../../src/core/env-rotation.ts'
import { isRekeyError } from '../../src/core/errors.ts'

const NAMES = ['PORT', 'OTHER', 'JWT_SECRET', 'JWT_SECRET_PREV', 'JWT_SECRET_ROTATED_AT', 'JWT_EXPIRATION', 'TAIL']
let baseline: Set<string>

/**
 * Node's own reading of a file: process.loadEnvFile into a clean slice of process.env.
 * process.env lists a variable named by an integer (`0=`) but can neither read nor delete
 * it, so it would haunt every later reading: such a name counts only when this file assigns
 * it, with the value util.parseEnv (the parser behind loadEnvFile) gives it.
 */
export function nodeLoad(file: string): Record<string, string> {
  const own = util.parseEnv(readFileSync(file, 'utf8'))
  // loadEnvFile never overrides a variable already set (the shell's `_`, CI's PORT): the ones
  // this file assigns are set aside for the reading and put back after it.
  const saved: Record<string, string> = {}
  for (const key of Object.keys(own)) {
    const value = process.env[key]
    if (value !== undefined && baseline.has(key)) {
      saved[key] = value
      delete process.env[key]
    }
  }
  process.loadEnvFile(file)
  const out: Record<string, string> = {}
  for (const key of Object.keys(process.env)) {
    if (baseline.has(key) && !(key in saved)) continue
    const value = process.env[key]
    if (value !== undefined) out[key] = value
    else if (own[key] !== undefined) out[key] = own[key]
    delete process.env[key]
  }
  Object.assign(process.env, saved)
  return out
}

/** The three readings of a file. */
function readings(file: string): { rekey: Record<string, string>, node: Record<string, string>, dotenv: Record<string, string> } {
  const text = readFileSync(file, 'utf8')
  return { rekey: parseEnv(text), node: nodeLoad(file), dotenv: dotenv.parse(text) }
}

function assertAllRead(file: string, expected: Record<string, string>, label: string): void {
  const r = readings(file)
  assert.deepEqual({ ...r.rekey }, expected, `${label}: rekey`)
  assert.deepEqual(r.node, expected, `${label}: Node`)
  assert.deepEqual({ ...r.dotenv }, expected, `${label}: dotenv`)
}

// What real secrets and passphrases hold: quotes of every kind, #, =, spaces, backslashes, $,
// unicode (spaces included), CR and LF, and the escape sequences parsers treat specially.
const PIECES = ['a', 'Z', '0', '9', '-', '_', '"', "'", '`', '#', '=', ' ', '  ', '\t', '\\', '\\n', '\\r', '\\"', "\\'", '$', '${X}', '$HOME',
  'é', 'ß', '日本', '🔑', '\u00a0', '\u2028', '\r', '\n', '\r\n', ':', ';', '/', '+', '%', '!', '&', '*', '(', ')', '{', '}', '[', ']', '<', '>', '?', '@', '^', '|', '~', ',', '.']
const value = fc.array(fc.constantFrom(...PIECES), { minLength: 0, maxLength: 24 }).map((parts) => parts.join(''))
const quote = fc.constantFrom('', "'", '"', '`')

/**
 * The oracle for a refusal: whether any one-line quoting of the file as rotated (or rolled
 * back) from `text` (`secret` on line 4, `prev` and the timestamp appended) reads as planned
 * in Node and dotenv themselves.
 */
function someOneLineFormReadsAlike(text: string, secret: string, prev: string, now: Date): boolean {
  const head = text.slice(0, text.indexOf('export JWT_SECRET='))
  const tail = text.slice(text.lastIndexOf('JWT_EXPIRATION=1h\n'))
  const quotes = ['', "'", '"', '`']
  const { JWT_SECRET: _old, ...others } = parseEnv(text)
  const expected = { ...others, JWT_SECRET: secret, JWT_SECRET_PREV: prev, JWT_SECRET_ROTATED_AT: now.toISOString() }
  // rekey writes a value on one line: a raw line break or CR is never a form it may use.
  const written = (q: string, v: string): string | undefined => {
    const body = q === '"' ? v.replaceAll('\n', '\\n') : v
    return /[\r\n]/.test(body) ? undefined : `${q}${body}${q}`
  }
  const same = (r: Record<string, string>): boolean => JSON.stringify(Object.entries(r).sort()) === JSON.stringify(Object.entries(expected).sort())
  for (const q of quotes) {
    for (const p of quotes) {
      const s = written(q, secret)
      const v = written(p, prev)
      if (s === undefined || v === undefined) continue
      const candidate = `${head}export JWT_SECRET=${s} # the signing key\n${tail}JWT_SECRET_PREV=${v}\nJWT_SECRET_ROTATED_AT=${now.toISOString()}\n`
      const file = path.join(dir, `oracle-${counter++}.env`)
      writeFileSync(file, candidate)
      if (same(nodeLoad(file)) && same({ ...dotenv.parse(candidate) }) && same({ ...parseEnv(candidate) })) return true
    }
  }
  return false
}

let dir: string
before(() => {
  for (const name of NAMES) delete process.env[name]
  baseline = new Set(Object.keys(process.env))
  dir = mkdtempSync(path.join(existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir(), 'rekey-parsers-'))
})
after(() => rmSync(dir, { recursive: true, force: true }))

const FRESH = 'f'.repeat(64)
let counter = 0

/** Applies a change the way the CLI does; returns false when it was refused (and checks nothing was written). */
async function apply(file: string, change: EnvChange): Promise<boolean> {
  const before = readFileSync(file, 'utf8')
  try {
    await updateEnvFile(file, change, { backups: 1 })
    return true
  } catch (err) {
    assert.ok(isRekeyError(err) && err.code === 'ERR_CONFIG', String(err))
    assert.match(err.message, /line \d+/, 'a refusal names the line')
    assert.equal(readFileSync(file, 'utf8'), before, 'a refusal writes nothing')
    return false
  }
}

describe('env-file rewrites agree across rekey, Node and dotenv', () => {
  it('dotenvReading restates the dotenv package exactly', () => {
    fc.assert(fc.property(fc.array(fc.tuple(fc.constantFrom('A', 'B', 'export C', ' D', 'E '), fc.constantFrom('=', ' = ', ': ', '='), quote, value, fc.constantFrom('', ' # c', '#x', ' ')), { maxLength: 4 }), (lines) => {
      const text = lines.map(([k, eq, q, v, tail]) => `${k}${eq}${q}${v}${q}${tail}`).join('\n')
      assert.deepEqual(dotenvReading(text), { ...dotenv.parse(text) })
    }), { numRuns: 3000 })
  })

  it('rotate -> rollback -> finalize: every value reads the same in all three parsers, or the file is refused untouched', async (t) => {
    const started = Date.now()
    const cpu = process.cpuUsage()
    let written = 0
    let refused = 0
    await fc.assert(fc.asyncProperty(value, quote, value, quote, async (secret, q, other, oq) => {
      const file = path.join(dir, `case-${counter++}.env`)
      const text = `# settings\nPORT=3000\nOTHER=${oq}${other}${oq}\nexport JWT_SECRET=${q}${secret}${q}   # the signing key\nJWT_EXPIRATION=1h\nTAIL=end\n`
      writeFileSync(file, text, { mode: 0o600 })
      const original = readings(file)
      const canonical = (r: Record<string, string>): string => JSON.stringify(Object.entries(r).sort(([a], [b]) => a.localeCompare(b)))
      const agree = canonical(original.rekey) === canonical(original.node) && canonical(original.node) === canonical({ ...original.dotenv })
      const vars = original.rekey
      const layout = envLayout(vars)
      const lifetime = tokenLifetimeOf(layout, vars)
      const now = new Date('2026-01-01T00:00:00Z')
      if ((vars.JWT_SECRET ?? '') === '') return // no key to move: rotate sets a first one, covered elsewhere
      const rotated = await apply(file, planRotate(vars, layout, FRESH, now, false))
      if (!agree) {
        assert.equal(rotated, false, `a file the parsers read differently is refused: ${JSON.stringify(text)}`)
        refused++
        return
      }
      if (!rotated) {
        // Refused though the parsers agree: only for a line rekey itself cannot read for sure
        // (a stray `=` line, a lone CR), or an old value with no form all three read alike.
        const unsure = parseEnvDocument(text).problems.length > 0
        assert.ok(unsure || !someOneLineFormReadsAlike(text, FRESH, vars.JWT_SECRET as string, now), `refused a writable value: ${JSON.stringify(text)}`)
        refused++
        return
      }
      // Every other variable, including one a value's line break created (`a\r\nb=`), reads as before.
      const { JWT_SECRET: _moved, ...untouched } = vars
      assertAllRead(file, { ...untouched, JWT_SECRET: FRESH, JWT_SECRET_PREV: vars.JWT_SECRET as string, JWT_SECRET_ROTATED_AT: now.toISOString() }, 'after rotate')
      const v2 = parseEnv(readFileSync(file, 'utf8'))
      if (!await apply(file, planRollback(v2, envLayout(v2), now))) {
        // The old value goes back to line 4, where a neighbour's quoting may leave it no form.
        assert.ok(!someOneLineFormReadsAlike(text, vars.JWT_SECRET as string, FRESH, now), `refused a rollback it could write: ${JSON.stringify(text)}`)
        refused++
        return
      }
      assertAllRead(file, { ...untouched, JWT_SECRET: vars.JWT_SECRET as string, JWT_SECRET_PREV: FRESH, JWT_SECRET_ROTATED_AT: now.toISOString() }, 'after rollback')
      const v3 = parseEnv(readFileSync(file, 'utf8'))
      const fin = planFinalize(v3, envLayout(v3), now, true, lifetime)
      assert.ok(fin !== undefined && await apply(file, fin))
      assertAllRead(file, { ...untouched, JWT_SECRET: vars.JWT_SECRET as string }, 'after finalize')
      written++
    }), { numRuns: 1500 })
    const used = process.cpuUsage(cpu)
    const cpuMs = Math.round((used.user + used.system) / 1000)
    t.diagnostic(`${written} files rotated, rolled back and finalized, ${refused} refused; ${cpuMs} ms CPU, ${Date.now() - started} ms wall`)
    assert.ok(written > 600 && refused > 100, `both paths exercised: ${written} written, ${refused} refused`)
    // CPU time, not wall time: the budget must not depend on how busy the machine is (about 7 s idle).
    assert.ok(cpuMs < 30_000, `${cpuMs} ms of CPU (${Date.now() - started} ms wall)`)
  })

  it('the issue\'s passphrase moves to _PREV in a form Node reads whole', async () => {
    const file = path.join(dir, 'issue.env')
    writeFileSync(file, 'JWT_SECRET=my-"quoted"-passphrase-that-is-long-enough-123\n')
    const vars = parseEnv(readFileSync(file, 'utf8'))
    assert.ok(await apply(file, planRotate(vars, envLayout(vars), FRESH, new Date(), false)))
    assert.equal(nodeLoad(file).JWT_SECRET_PREV, 'my-"quoted"-passphrase-that-is-long-enough-123')
  })

  it('a moved value takes a quote that does not close a quote dotenv holds open from an earlier line', async () => {
    // Found by CI: `'#'` alone reads alike, but its `'` ends the quote dotenv opened at OTHER='\'.
    const file = path.join(dir, 'neighbour.env')
    writeFileSync(file, "PORT=3000\nOTHER='\\'\nexport JWT_SECRET=`#`   # the signing key\nTAIL=end\n", { mode: 0o600 })
    const vars = parseEnv(readFileSync(file, 'utf8'))
    const now = new Date('2026-01-01T00:00:00Z')
    assert.ok(await apply(file, planRotate(vars, envLayout(vars), FRESH, now, false)))
    assertAllRead(file, { PORT: '3000', OTHER: '\\', JWT_SECRET: FRESH, JWT_SECRET_PREV: '#', JWT_SECRET_ROTATED_AT: now.toISOString(), TAIL: 'end' }, 'after rotate')
  })

  it('every refusal names a real line: a name only dotenv sees after a carriage return, a byte-order mark', () => {
    for (const text of ['A=1\rOTHER=2\n', 'PORT=3000\nA=x\r OTHER=2\nB=3\n', '\ufeffJWT_SECRET=abc\n']) {
      const problems = disagreements(parseEnvDocument(text), text)
      assert.ok(problems.length > 0, JSON.stringify(text))
      for (const p of problems) assert.ok(p.line >= 1 && p.line <= text.split('\n').length, `${JSON.stringify(text)}: line ${p.line}`)
    }
    const bom = disagreements(parseEnvDocument('\ufeffJWT_SECRET=abc\n'), '\ufeffJWT_SECRET=abc\n')
    assert.match(bom[0]?.message ?? '', /byte-order mark/)
  })
})
