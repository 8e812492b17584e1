/**
 * Does usage reporting allocate on the verify path? Counts garbage collections (`gc`
 * performance entries) over the same number of verifications with and without `opts.usage`,
 * and over 5,000,000 `UsageCounts.add` calls on one kid. Equal counts mean nothing per
 * verification beyond the counter. The store is a SQLite file in a temp directory, flushed
 * once an hour (never during the run).
 *
 *   node bench/usage-alloc.ts
 *   N=1000000 node bench/usage-alloc.ts
 */
import { mkdtempSync, rmSync } from 'node:fs'
import os from 'node:os'
import { join } from 'node:path'
import { PerformanceObserver } from 'node:perf_hooks'
import { UsageCounts } from '../src/core/usage-counts.ts'
import { generateSecret, Keyring } from '../src/index.ts'

const N = Number(process.env.N ?? 300_000)
let collections = 0
new PerformanceObserver((list) => { collections += list.getEntries().length }).observe({ entryTypes: ['gc'] })
const settle = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 50))

const dir = mkdtempSync(join(os.tmpdir(), 'rekey-bench-alloc-'))
const secret = generateSecret()
const plain = Keyring.fromEnv({ JWT_SECRET: secret })
const counted = Keyring.fromEnv({ JWT_SECRET: secret }, { usage: { store: join(dir, 'usage.db'), name: 'bench', flushInterval: 3600 } })
const token = plain.sign({ sub: 'user-1234' }, { expiresIn: '1h' })

async function round(keyring: Keyring): Promise<number> {
  for (let i = 0; i < 100_000; i++) keyring.verify(token)
  await settle()
  collections = 0
  for (let i = 0; i < N; i++) keyring.verify(token)
  await settle()
  return collections
}

console.log(`usage allocation: node ${process.version}, ${N.toLocaleString('en-US')} verifications per round, garbage collections counted`)
console.log('\n| round | usage off | usage on |\n| --- | ---: | ---: |')
for (let r = 1; r <= 5; r++) console.log(`| ${r} | ${await round(plain)} | ${await round(counted)} |`)

const counts = new UsageCounts()
counts.add('kid-a')
await settle()
collections = 0
for (let i = 0; i < 5_000_000; i++) counts.add('kid-a')
await settle()
console.log(`\n5,000,000 UsageCounts.add on one kid: ${collections} garbage collections`)
await counted.close()
rmSync(dir, { recursive: true, force: true })
