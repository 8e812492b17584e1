/**
 * Progress output: a bar redrawn in place on a terminal (throttled, the last reading always
 * drawn), one JSON line per reading otherwise. The clock is frozen and moved by hand.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { progressOutput } from '../../src/cli/progress.ts'

function capture(): { io: { stdout: (t: string) => void, stderr: (t: string) => void, env: Record<string, string> }, out: string[], err: string[] } {
  const out: string[] = []
  const err: string[] = []
  return { io: { stdout: (t) => { out.push(t) }, stderr: (t) => { err.push(t) }, env: {} }, out, err }
}

describe('progressOutput', () => {
  it('draws a bar on a terminal: redrawn with \\r, at most every interval, the end always', () => {
    let now = 1_000
    const { io, out, err } = capture()
    const bar = progressOutput(io, { tty: true, label: 'rewrap t.c', intervalMs: 250, now: () => now })
    now += 1000
    bar.update({ done: 1000, total: 4000 })
    now += 100
    bar.update({ done: 2000, total: 4000 })
    now += 100
    bar.update({ done: 4000, total: 4000 })
    bar.finish()
    assert.equal(out.length, 0, 'nothing on stdout')
    assert.equal(err.length, 3, 'the middle reading was throttled; the bar and the end drawn; then a newline')
    assert.match(err[0] as string, /^\rrewrap t\.c \[#{8}\.{22}\]  25%  1,000\/4,000  1,000\/s  ETA 3s $/)
    assert.match(err[1] as string, /\[#{30}\] 100%  4,000\/4,000/)
    assert.equal(err[2], '\n')
  })

  it('writes one JSON line per reading otherwise', () => {
    let now = 0
    const { io, out, err } = capture()
    const lines = progressOutput(io, { tty: false, label: 'x', now: () => now })
    for (const done of [10, 20, 30]) {
      now += 10
      lines.update({ done, total: 30, rewrapped: done })
    }
    lines.finish()
    assert.equal(err.length, 0)
    assert.deepEqual(out.map((l) => JSON.parse(l)), [
      { event: 'progress', done: 10, total: 30, rewrapped: 10, rowsPerSecond: 1000, elapsedMs: 10 },
      { event: 'progress', done: 20, total: 30, rewrapped: 20, rowsPerSecond: 1000, elapsedMs: 20 },
      { event: 'progress', done: 30, total: 30, rewrapped: 30, rowsPerSecond: 1000, elapsedMs: 30 },
    ])
  })
})
