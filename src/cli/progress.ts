/**
 * Progress of a long command: a bar redrawn on a terminal (stderr, at most every
 * `intervalMs`), JSON lines otherwise (stdout, one per update: a script can act on each).
 */
import type { CliIo } from './context.ts'

/** One progress reading. */
export interface ProgressReading {
  readonly done: number
  readonly total: number
  readonly [field: string]: unknown
}

/** Draws progress; `finish` clears the bar. */
export interface ProgressOutput {
  update(reading: ProgressReading): void
  finish(): void
}

const WIDTH = 30

/** A bar when `tty`, else JSON lines `{"event":"progress",...}` on stdout. */
export function progressOutput(io: CliIo, options: { tty: boolean, label: string, intervalMs?: number, now?: () => number }): ProgressOutput {
  const now = options.now ?? Date.now
  const started = now()
  const interval = options.intervalMs ?? 250
  let last = -Infinity
  let drawn = false
  return {
    update(reading) {
      const t = now()
      const final = reading.done >= reading.total
      if (options.tty && !final && t - last < interval) return
      last = t
      const seconds = Math.max((t - started) / 1000, 0.001)
      const rate = Math.round(reading.done / seconds)
      if (!options.tty) {
        io.stdout(`${JSON.stringify({ event: 'progress', ...reading, rowsPerSecond: rate, elapsedMs: t - started })}\n`)
        return
      }
      const share = reading.total === 0 ? 1 : Math.min(reading.done / reading.total, 1)
      const filled = Math.round(share * WIDTH)
      const eta = rate > 0 ? Math.ceil((reading.total - reading.done) / rate) : 0
      io.stderr(`\r${options.label} [${'#'.repeat(filled)}${'.'.repeat(WIDTH - filled)}] ${(share * 100).toFixed(0).padStart(3)}%  ${reading.done.toLocaleString('en-US')}/${reading.total.toLocaleString('en-US')}  ${rate.toLocaleString('en-US')}/s  ETA ${eta}s `)
      drawn = true
    },
    finish() {
      if (drawn) io.stderr('\n')
    },
  }
}
