/**
 * Verify-path benchmark: rekey against fast-jwt (no cache), jsonwebtoken, jose and the
 * raw node:crypto floor, in one process, interleaved rounds. Prints a table.
 *
 *   npm run bench            # default rounds
 *   ROUNDS=9 MS=400 npm run bench
 */
import { createHmac, createSecretKey, timingSafeEqual } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { createVerifier } from 'fast-jwt'
import * as jose from 'jose'
import jsonwebtoken from 'jsonwebtoken'
import { Keyring, generateSecret } from '../src/index.ts'

const ROUNDS = Number(process.env.ROUNDS ?? 7)
const MS = Number(process.env.MS ?? 300)

const current = generateSecret()
const previous = generateSecret()
const keyring = Keyring.fromEnv({ JWT_SECRET: current, JWT_SECRET_PREV: previous })
const claims = { sub: 'user-1234', role: 'user', ver: 3 }
const token = keyring.sign(claims, { audience: 'api', issuer: 'https://auth.example.com', jwtId: 'b1f2c3d4e5f6', expiresIn: '1h' })
const options = { audience: 'api', issuer: 'https://auth.example.com', clockTolerance: 5 }

const rekeyVerify = keyring.verifier(options)
// The same keys with usage evidence on: a counter per verification, flushed to SQLite every 10 s.
const usageDir = mkdtempSync(path.join(os.tmpdir(), 'rekey-bench-'))
const counted = Keyring.fromEnv({ JWT_SECRET: current, JWT_SECRET_PREV: previous }, { usage: { store: path.join(usageDir, 'usage.db'), name: 'bench' } })
const countedVerify = counted.verifier(options)
const fastJwtVerify = createVerifier({
  key: current, algorithms: ['HS256'], allowedAud: 'api', allowedIss: 'https://auth.example.com', clockTolerance: 5000, cache: false,
})
const joseKey = new TextEncoder().encode(current)
const secretBuffer = Buffer.from(current)
// The floor: what any verifier must do at least, with the key imported once.
const floorKey = createSecretKey(secretBuffer)
const raw = (t: string): unknown => {
  const dot = t.lastIndexOf('.')
  const mac = createHmac('sha256', floorKey).update(t.slice(0, dot)).digest()
  if (!timingSafeEqual(mac, Buffer.from(t.slice(dot + 1), 'base64url'))) throw new Error('bad signature')
  return JSON.parse(Buffer.from(t.slice(t.indexOf('.') + 1, dot), 'base64url').toString())
}
// The same floor with the MAC compared as base64url text, as rekey does: no claims, no kid.
const rawText = (t: string): unknown => {
  const dot = t.lastIndexOf('.')
  const mac = createHmac('sha256', floorKey).update(t.slice(0, dot)).digest('base64url')
  const sig = t.slice(dot + 1)
  let diff = mac.length ^ sig.length
  for (let i = 0; i < mac.length; i++) diff |= mac.charCodeAt(i) ^ sig.charCodeAt(i)
  if (diff !== 0) throw new Error('bad signature')
  return JSON.parse(Buffer.from(t.slice(t.indexOf('.') + 1, dot), 'base64url').toString())
}

type Case = { name: string, run: (t: string) => unknown, async?: boolean }
const cases: Case[] = [
  { name: 'rekey verify (2 keys, kid, aud+iss+exp)', run: (t) => rekeyVerify(t) },
  { name: 'rekey verify, usage reporting on', run: (t) => countedVerify(t) },
  { name: 'fast-jwt (cache off)', run: (t) => fastJwtVerify(t) },
  { name: 'jsonwebtoken', run: (t) => jsonwebtoken.verify(t, secretBuffer, { audience: 'api', issuer: 'https://auth.example.com', clockTolerance: 5, algorithms: ['HS256'] }) },
  { name: 'jose jwtVerify (async)', run: (t) => jose.jwtVerify(t, joseKey, { audience: 'api', issuer: 'https://auth.example.com', clockTolerance: 5 }), async: true },
  { name: 'raw floor (HMAC + compare + JSON.parse)', run: raw },
  { name: 'raw floor, MAC compared as text', run: rawText },
]

for (const c of cases) {
  const out = c.run(token)
  if (c.async) await out
}

async function measure(c: Case): Promise<number> {
  let n = 0
  const end = performance.now() + MS
  const start = performance.now()
  if (c.async) {
    while (performance.now() < end) {
      for (let i = 0; i < 100; i++) await c.run(token)
      n += 100
    }
  } else {
    while (performance.now() < end) {
      for (let i = 0; i < 200; i++) c.run(token)
      n += 200
    }
  }
  return n / ((performance.now() - start) / 1000)
}

const results = new Map<string, number[]>(cases.map((c) => [c.name, []]))
for (let r = 0; r < ROUNDS; r++) {
  for (const c of cases) results.get(c.name)!.push(await measure(c))
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number
const med = new Map([...results].map(([k, v]) => [k, median(v)]))
const rekeyOps = med.get(cases[0]!.name)!
console.log(`verify benchmark: node ${process.version}, ${os.cpus()[0]?.model ?? 'cpu'} x${os.cpus().length}, ${ROUNDS} rounds x ${MS} ms, median`)
console.log('')
console.log('| implementation | ops/s | rekey is |')
console.log('| --- | ---: | ---: |')
for (const [name, ops] of med) {
  console.log(`| ${name} | ${Math.round(ops).toLocaleString('en-US')} | ${name === cases[0]!.name ? '1.00x' : `${(rekeyOps / ops).toFixed(2)}x`} |`)
}
const fast = med.get('fast-jwt (cache off)')!
const floor = med.get('raw floor (HMAC + compare + JSON.parse)')!
console.log('')
const textFloor = med.get('raw floor, MAC compared as text')!
console.log(`targets: rekey/fast-jwt = ${(rekeyOps / fast).toFixed(2)} (>= 1.30), rekey/floor = ${(rekeyOps / floor).toFixed(2)} (>= 0.80); rekey/text floor = ${(rekeyOps / textFloor).toFixed(2)}`)
const usageOps = med.get('rekey verify, usage reporting on')!
console.log(`usage reporting: ${(usageOps / rekeyOps).toFixed(2)}x the verify rate without it`)
await counted.close()
rmSync(usageDir, { recursive: true, force: true })
