/**
 * Field-cipher benchmark: rekey/crypt's encrypt and decrypt against bare node:crypto
 * AES-256-GCM doing the same work (random 96-bit nonce, AAD, tag), in one process,
 * interleaved rounds, medians of ops per CPU-second. The bare floor returns text too (base64url of
 * nonce || ciphertext || tag), since a column holds text; a second floor returns a Buffer.
 *
 *   node bench/crypt.ts
 *   ROUNDS=9 MS=300 node bench/crypt.ts
 */
import { createCipheriv, createDecipheriv, createSecretKey, randomBytes } from 'node:crypto'
import os from 'node:os'
import { Cipher } from '../src/crypt.ts'

const ROUNDS = Number(process.env.ROUNDS ?? 7)
const MS = Number(process.env.MS ?? 250)

const hex = randomBytes(32).toString('hex')
const cipher = Cipher.fromEnv({ ENCRYPTION_KEY: hex, ENCRYPTION_KEY_PREV: randomBytes(32).toString('hex') })
const key = createSecretKey(Buffer.from(hex, 'hex'))
const AAD = 'users:123456'
const aadBytes = (): Buffer => Buffer.from(AAD, 'utf8')

const bareEncryptText = (plain: string): string => {
  const nonce = randomBytes(12)
  const gcm = createCipheriv('aes-256-gcm', key, nonce)
  gcm.setAAD(aadBytes())
  const body = Buffer.concat([nonce, gcm.update(plain, 'utf8'), gcm.final(), gcm.getAuthTag()])
  return body.toString('base64url')
}
const bareEncryptBuffer = (plain: string): Buffer => {
  const nonce = randomBytes(12)
  const gcm = createCipheriv('aes-256-gcm', key, nonce)
  gcm.setAAD(aadBytes())
  return Buffer.concat([nonce, gcm.update(plain, 'utf8'), gcm.final(), gcm.getAuthTag()])
}
const bareDecryptText = (text: string): Buffer => {
  const all = Buffer.from(text, 'base64url')
  const gcm = createDecipheriv('aes-256-gcm', key, all.subarray(0, 12))
  gcm.setAAD(aadBytes())
  gcm.setAuthTag(all.subarray(all.length - 16))
  return Buffer.concat([gcm.update(all.subarray(12, all.length - 16)), gcm.final()])
}

// Ops per second of this process's CPU time (user + system), not of wall time: on a shared
// machine the wall clock counts the time other processes held the core.
function opsPerSecond(fn: () => unknown): number {
  let n = 0
  const end = performance.now() + MS
  const cpu = process.cpuUsage()
  while (performance.now() < end) {
    for (let i = 0; i < 100; i++) fn()
    n += 100
  }
  const used = process.cpuUsage(cpu)
  return n / ((used.user + used.system) / 1e6)
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number
const fmt = (n: number): string => Math.round(n).toLocaleString('en-US')

console.log(`crypt benchmark: node ${process.version}, ${os.cpus()[0]?.model.split(' ').slice(0, 2).join(' ') ?? 'cpu'} x${os.cpus().length}, ${ROUNDS} rounds x ${MS} ms, median ops per CPU-second, load average ${os.loadavg()[0]?.toFixed(1)}\n`)
console.log('| value | operation | rekey/crypt ops/s | bare node:crypto (text) ops/s | bare (Buffer) ops/s | rekey overhead per value vs text floor |')
console.log('| --- | --- | ---: | ---: | ---: | ---: |')
for (const size of [64, 1024]) {
  const plain = 'x'.repeat(size)
  const ours = cipher.encrypt(plain, { aad: AAD })
  const bare = bareEncryptText(plain)
  const cases = {
    encrypt: [() => cipher.encrypt(plain, { aad: AAD }), () => bareEncryptText(plain), () => bareEncryptBuffer(plain)],
    decrypt: [() => cipher.decrypt(ours, { aad: AAD }), () => bareDecryptText(bare), null],
  } as const
  for (const [op, fns] of Object.entries(cases)) {
    const results: number[][] = [[], [], []]
    for (let r = 0; r < ROUNDS; r++) {
      fns.forEach((fn, i) => { if (fn !== null) results[i]?.push(opsPerSecond(fn)) })
    }
    const [a, b, c] = results.map((xs) => (xs.length === 0 ? Number.NaN : median(xs))) as [number, number, number]
    const overheadUs = (1e6 / a) - (1e6 / b)
    console.log(`| ${size} B | ${op} | ${fmt(a)} | ${fmt(b)} | ${Number.isNaN(c) ? '-' : fmt(c)} | ${overheadUs.toFixed(2)} µs |`)
  }
}
