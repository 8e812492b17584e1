import { readFileSync } from 'node:fs'

let cached: string | undefined

/** rekey's version, from its package.json (two levels above src/ops or dist/ops). */
export function rekeyVersion(): string {
  if (cached === undefined) {
    try {
      cached = String((JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version?: unknown }).version ?? '0.0.0')
    } catch {
      cached = '0.0.0'
    }
  }
  return cached
}
