/**
 * Audit-note masking on hostile notes: the time `maskSecrets` takes on 64 KiB notes built to
 * hit each pattern's worst case (runs of name characters, repeated keywords, unclosed quotes,
 * scheme-like runs). Prints a table: best of ROUNDS (default 9) per note, ms. Linear masking
 * keeps every row far under 5 ms; the former quadratic patterns took seconds on some of them.
 *
 *   node bench/mask.ts
 */
import { arch, cpus } from 'node:os'
import { maskSecrets } from '../src/core/mask.ts'

const SIZE = 64 * 1024
const ROUNDS = Number(process.env.ROUNDS ?? 9)
const UNITS: Record<string, string> = {
  'prose': 'The quick brown fox rotated key 3f1c at noon. ',
  'a.a.a. (boundaries)': 'a.',
  'a-a-a-': 'a-',
  'keykeykey': 'key',
  'key.key.': 'key.',
  'key=key=': 'key=',
  "key='key='": "key='",
  'secret="secret="': 'secret="',
  'key =key =': 'key =',
  'a://b:a://b:': 'a://b:',
  'aA1=aA1=': 'aA1=',
  'eyJ.eyJ.': 'eyJ.',
  'hex runs': '0123456789abcdef0123456789abcdefg',
  'spaces after key': 'key                ',
}

const rows: [string, number, number][] = []
for (const [name, unit] of Object.entries(UNITS)) {
  const note = unit.repeat(Math.ceil(SIZE / unit.length)).slice(0, SIZE)
  const small = note.slice(0, SIZE / 4)
  const best = (text: string): number => {
    let min = Infinity
    for (let i = 0; i < ROUNDS; i++) {
      const started = performance.now()
      maskSecrets(text)
      min = Math.min(min, performance.now() - started)
    }
    return min
  }
  best(note) // warm-up
  rows.push([name, best(small), best(note)])
}
console.log(`mask benchmark: node ${process.version}, ${cpus()[0]?.model.trim() ?? arch()} x${cpus().length}, best of ${ROUNDS}\n`)
console.log('| note (64 KiB of) | 16 KiB, ms | 64 KiB, ms |')
console.log('| --- | ---: | ---: |')
for (const [name, small, full] of rows) console.log(`| ${name} | ${small.toFixed(2)} | ${full.toFixed(2)} |`)
console.log(`\nworst 64 KiB: ${Math.max(...rows.map((r) => r[2])).toFixed(2)} ms`)
