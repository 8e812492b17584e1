/**
 * Preloaded (`NODE_OPTIONS=--import=...`) into a child process whose time-based rules a test
 * must cross without sleeping through them: `Date.now()` runs REKEY_TEST_WARP times faster
 * than the real clock from the moment the process starts. Timers keep real time, so a rule
 * that polls `Date.now()` (rotate's publication delay, jose's cooldown) ends sooner.
 */
const factor = Number(process.env.REKEY_TEST_WARP ?? '1')
if (Number.isFinite(factor) && factor > 1) {
  const realNow = Date.now.bind(Date)
  const t0 = realNow()
  Date.now = () => Math.floor(t0 + (realNow() - t0) * factor)
}
