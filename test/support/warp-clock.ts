/**
 * Preloaded (`NODE_OPTIONS=--import=...`) into a child process whose time-based rules a test
 * must cross without sleeping through them. REKEY_TEST_WARP: the clock runs that many times
 * faster than the real one from the moment the process starts. REKEY_TEST_CLOCK_OFFSET_MS:
 * the clock is that far ahead of the real one (a CLI run "later"). Both `Date.now()` and
 * `new Date()` follow; timers keep real time.
 */
const factor = Number(process.env.REKEY_TEST_WARP ?? '1')
const offset = Number(process.env.REKEY_TEST_CLOCK_OFFSET_MS ?? '0')
if ((Number.isFinite(factor) && factor > 1) || (Number.isFinite(offset) && offset !== 0)) {
  const RealDate = Date
  const realNow = RealDate.now.bind(RealDate)
  const t0 = realNow()
  const k = Number.isFinite(factor) && factor > 1 ? factor : 1
  const plus = Number.isFinite(offset) ? offset : 0
  const now = (): number => Math.floor(t0 + (realNow() - t0) * k + plus)
  class WarpedDate extends RealDate {
    constructor(...args: unknown[]) {
      if (args.length === 0) super(now())
      else super(...(args as [string]))
    }

    static override now(): number {
      return now()
    }
  }
  globalThis.Date = WarpedDate as DateConstructor
}
