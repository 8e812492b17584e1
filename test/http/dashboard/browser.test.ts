/**
 * The dashboard in a real browser (playwright-core driving Debian's chromium): sign in with
 * the keyboard, start a rotation while a load loop calls /api/auth/me, watch the new key
 * appear as `next` (a second, lagging instance holds it there), become `current` and take
 * over the verifications in the chart, see finalize refused with its reason and time, and the
 * usage evidence beside it (which processes, a library app among them, used the old key in the
 * last 5 min; who reports and when) keep it disabled past the grace window; 6 minutes on,
 * finalize and see the old key retired. The page also reads at 375 px wide. With
 * REKEY_UPDATE_SCREENSHOT=1 it saves docs/dashboard-rotation.png mid-rotation.
 *
 * Skipped when no chromium is installed, unless CI is set (CI installs it: see .ci/run).
 */
import assert from 'node:assert/strict'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import os, { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { chromium, type Browser, type Page } from 'playwright-core'
import { startServer, type RunningServer } from '../../../src/http/server.ts'
import { LogSink, TEST_ARGON2 } from '../support.ts'
import { createAdmin } from './support.ts'

const CHROMIUM = process.env.REKEY_CHROMIUM ?? '/usr/bin/chromium'
const SCREENSHOT = resolve(import.meta.dirname, '../../../docs/dashboard-rotation.png')
const present = existsSync(CHROMIUM)
if (!present && process.env.CI !== undefined) throw new Error(`${CHROMIUM} is missing: CI installs Debian's chromium in .ci/run`)

const sleep = (ms: number): Promise<void> => new Promise((done) => setTimeout(done, ms))

describe('dashboard in a real browser', { skip: present ? false : `no chromium at ${CHROMIUM}` }, () => {
  // The service's clock can jump ahead: the grace window (token lifetime + 60 s skew) passes without waiting for it.
  let jumpMs = 0
  const clock = { now: () => Date.now() + jumpMs }
  let dir: string
  let server: RunningServer
  let browser: Browser
  let page: Page
  let stopLoad = false
  let load: Promise<void> = Promise.resolve()
  let flusher: NodeJS.Timeout | undefined
  let laggard: NodeJS.Timeout | undefined
  const pageErrors: string[] = []
  const admin = { email: 'ops@example.test', password: 'correct horse battery staple' }

  /** Users calling /api/auth/me in a loop; each refreshes its pair at its own pace, so the new key takes over gradually. */
  async function loadLoop(refreshEveryMs: number, deadline: number): Promise<void> {
    const email = `load-${refreshEveryMs}@example.test`
    const password = 'load-user-password'
    const post = async (path: string, body: unknown): Promise<{ accessToken: string, refreshToken: string }> => {
      const res = await fetch(`${server.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
      if (!res.ok) throw new Error(`${path}: ${res.status} ${await res.text()}`)
      return await res.json() as { accessToken: string, refreshToken: string }
    }
    await post('/api/auth/register', { email, password }).catch(() => {})
    let pair = await post('/api/auth/login', { email, password })
    let refreshed = Date.now()
    while (!stopLoad && Date.now() < deadline) {
      const res = await fetch(`${server.url}/api/auth/me`, { headers: { authorization: `Bearer ${pair.accessToken}` } })
      await res.arrayBuffer()
      if (res.status === 401 || Date.now() - refreshed >= refreshEveryMs) {
        pair = await post('/api/auth/refresh', { refreshToken: pair.refreshToken })
        refreshed = Date.now()
      }
      await sleep(40)
    }
  }

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'rekey-dashboard-'))
    server = await startServer({
      env: { REKEY_STORE: join(dir, 'rekey.db'), JWT_EXPIRATION: '10', REKEY_LOG_LEVEL: 'warn' },
      cwd: dir,
      clock,
      logDestination: new LogSink(),
      storeOptions: { pollIntervalMs: 50 },
      heartbeatIntervalMs: 1000,
      overrides: { ...TEST_ARGON2, port: 0, host: '127.0.0.1', 'rateLimit.max': 100_000, 'rateLimit.loginPerIp': 100_000, 'rateLimit.loginPerAccount': 100_000 },
    })
    // Usage counters reach the store every 5 s in production; the test flushes them faster.
    flusher = setInterval(() => { void server.service.usage.flush() }, 300)
    const inject = { request: (method: string, url: string, o: { body?: unknown } = {}) => server.app.inject({ method: method as 'POST', url, ...(o.body === undefined ? {} : { payload: o.body as object }) }) }
    await createAdmin(inject, server.service.store, admin.email, admin.password)
    const deadline = Date.now() + 90_000
    load = Promise.all([1000, 2000, 3000, 4000, 5000, 6000].map((ms) => loadLoop(ms, deadline))).then(() => {})
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-quic', '--no-first-run', '--disable-component-update', '--disable-sync'],
    })
    page = await browser.newPage({ viewport: { width: 1280, height: 1000 } })
    page.on('console', (m) => { if (m.type() === 'error') pageErrors.push(m.text()) })
    page.on('pageerror', (e) => { pageErrors.push(e.message) })
  })

  after(async () => {
    stopLoad = true
    clearInterval(flusher)
    clearInterval(laggard)
    await browser?.close().catch(() => {})
    await load.catch(() => {})
    await server?.close()
    rmSync(dir, { recursive: true, force: true })
  })

  const access = '[data-secret="access"]'
  const shareOf = async (kid: string): Promise<number> => {
    const value = await page.locator(`${access} .legend li[data-kid="${kid}"]`).getAttribute('data-share', { timeout: 2000 }).catch(() => null)
    return value === null ? 0 : Number(value)
  }
  const stateOf = (kid: string) => page.locator(`${access} tr[data-kid="${kid}"]`).getAttribute('data-state')

  test('sign in, rotate under load, watch the new key take over, finalize when allowed', async () => {
    await page.goto(`${server.url}/admin`)
    // Keyboard only: the labelled fields, then Enter submits the form.
    await page.getByLabel('Email').fill(admin.email)
    await page.getByLabel('Password').fill(admin.password)
    await page.getByLabel('Password').press('Enter')
    await page.locator(`${access} tr[data-state="current"]`).waitFor()
    assert.equal(await page.locator('#who-email').textContent(), admin.email)
    const oldKid = await page.locator(`${access} tr[data-state="current"]`).getAttribute('data-kid') as string
    // The load shows up in the chart: every verification on the one key.
    for (const until = Date.now() + 15_000; (await shareOf(oldKid)) < 0.99;) {
      assert.ok(Date.now() < until, 'the load shows up in the chart')
      await sleep(200)
    }
    await sleep(3000) // some history in the chart before the rotation

    // A second instance that has not loaded the new key yet: rotate waits for it, so the key stays `next` meanwhile.
    const store = server.service.store
    const startedAt = clock.now()
    let edgeVersion = (await store.getKeyset()).version
    let following = false
    const beat = async (): Promise<void> => {
      if (following) edgeVersion = (await store.getKeyset()).version
      await store.heartbeat({ instanceId: 'edge-2-lagging', hostname: `${os.hostname()}-edge`, pid: 4242, keysetVersion: edgeVersion, startedAt, lastSeen: clock.now() })
    }
    await beat()
    laggard = setInterval(() => { void beat() }, 200)
    await page.locator('#instances tr[data-instance="edge-2-lagging"]').waitFor()

    await page.locator(`${access} [data-action="rotate"]`).click()
    const next = page.locator(`${access} tr[data-state="next"]`)
    await next.waitFor()
    const newKid = await next.getAttribute('data-kid') as string
    assert.notEqual(newKid, oldKid)
    assert.equal(await page.locator(`${access} .phase`).getAttribute('data-phase'), 'staged')
    await page.locator('#instances tr[data-instance="edge-2-lagging"][data-up-to-date="false"]').waitFor()
    // The edge instance loads the key set: the rotation completes.
    following = true
    await page.locator(`${access} tr[data-kid="${newKid}"][data-state="current"]`).waitFor()
    assert.equal(await stateOf(oldKid), 'previous')
    await page.locator('#announce', { hasText: `Rotated access: key ${newKid} signs now` }).waitFor()

    // The new key's share rises as the load users refresh their tokens; the old one's falls.
    const samples: number[] = []
    let shot = false
    const deadline = Date.now() + 20_000
    while (Date.now() < deadline) {
      const share = await shareOf(newKid)
      samples.push(share)
      if (!shot && share >= 0.3 && share < 0.9 && (await shareOf(oldKid)) > 0.1) {
        shot = true
        if (process.env.REKEY_UPDATE_SCREENSHOT === '1') await page.screenshot({ path: SCREENSHOT })
      }
      if (share > 0.95) break
      await sleep(250)
    }
    assert.ok(samples.at(-1)! > 0.95, `the new key's share reached ${samples.at(-1)} (samples ${samples.join(' ')})`)
    assert.ok(samples.some((v) => v > 0 && v < 0.9), `the share rose through intermediate values (samples ${samples.join(' ')})`)
    assert.ok(samples.length > 0 && samples[0]! < samples.at(-1)!)

    // Finalize is refused while access tokens signed by the old key can still be valid: disabled, with the reason and the time.
    const finalize = page.locator(`${access} [data-action="finalize"]`)
    assert.equal(await finalize.isDisabled(), true)
    const why = page.locator(`${access} [data-role="finalize-why"]`)
    assert.match(await why.textContent() ?? '', new RegExp(`not safe yet: access tokens signed by ${oldKid} can still be valid\\. Safe at \\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\dZ`))
    const safeAt = Date.parse(await why.getAttribute('data-safe-at') ?? '')
    assert.ok(safeAt > clock.now(), 'the safe time is ahead')

    // Beside the button, the usage evidence: who verified the old key in the last 5 min, and who reports.
    // A library app (Keyring with opts.usage) writes its counters under NAME/HOST/PID, with a report row.
    await store.addUsage([
      { kid: oldKid, instanceId: 'orders-api/host-a/101', bucketStart: clock.now(), result: 'ok', count: 5 },
      { kid: '', instanceId: 'orders-api/host-a/101', bucketStart: clock.now(), result: 'report', count: 1 },
    ])
    const evidence = page.locator(`${access} [data-role="finalize-evidence"]`)
    await page.locator(`${access} [data-role="finalize-evidence"][data-in-use="true"]`, { hasText: 'orders-api (5)' }).waitFor()
    assert.match(await evidence.textContent() ?? '', /^Evidence: the previous key verified \d+ token\(s\) in the last 5 min on (?=.*rekey-serve#[0-9a-f]{8} \(\d+\))(?=.*orders-api \(5\)).*; finalize would cut them\. Reporting: (?=.*orders-api \(last [^)]+ ago\))(?=.*rekey-serve#[0-9a-f]{8} \(last ).*\.$/)

    // Past the grace window but within 5 minutes of that use: the time rule allows it, the evidence does not.
    jumpMs = safeAt - Date.now() + 2000
    await why.filter({ hasText: 'Finalize is safe now' }).waitFor()
    await page.locator(`${access}[data-finalize-allowed="false"] [data-role="finalize-evidence"][data-in-use="true"]`).waitFor()
    assert.equal(await finalize.isDisabled(), true, 'disabled while a reporting process used the old key in the last 5 min')

    // Time passes (the service clock jumps past the grace window): finalize becomes allowed.
    // Past the grace window, and past the 5 minutes in which the load still verified old-key tokens
    // (finalize on evidence): the service clock jumps at least 6 minutes.
    jumpMs = Math.max(safeAt - Date.now(), 6 * 60_000) + 2000
    await page.locator(`${access} [data-role="finalize-evidence"][data-in-use="false"]`, { hasText: 'no reporting process verified a token of the previous key in the last 5 min' }).waitFor()
    await page.locator(`${access}[data-finalize-allowed="true"]`).waitFor()
    await finalize.click()
    await page.locator(`${access} tr[data-kid="${oldKid}"][data-state="retired"]`).waitFor()
    await page.locator('#announce', { hasText: `Finalized access: retired ${oldKid}.` }).waitFor()
    assert.equal(await stateOf(newKid), 'current')
    // Every step is in the audit log, whose chain verifies.
    await page.locator('#audit tr[data-method="finalize"]').waitFor()
    for (const method of ['rotate-stage', 'rotate']) assert.equal(await page.locator(`#audit tr[data-method="${method}"]`).count(), 1)
    assert.equal(await page.locator('#chain').getAttribute('data-ok'), 'true')
    const rows = await server.service.store.listAudit()
    assert.deepEqual(rows.filter((r) => r.operator === admin.email).map((r) => r.method), ['rotate-stage', 'rotate', 'finalize'])
  })

  test('readable at 375 px: no horizontal page scroll, actions reachable; sign out with the keyboard', async () => {
    await page.setViewportSize({ width: 375, height: 800 })
    await page.locator(`${access} [data-action="rotate"]`).scrollIntoViewIfNeeded()
    // Runs in the page (a function: the CSP refuses strings to eval); the test's TypeScript has no DOM types.
    type PageGlobals = { document: { documentElement: { scrollWidth: number } }, innerWidth: number }
    const widths = await page.evaluate(() => {
      const g = globalThis as unknown as PageGlobals
      return { doc: g.document.documentElement.scrollWidth, view: g.innerWidth }
    })
    assert.ok(widths.doc <= widths.view, `page ${widths.doc}px wide in a ${widths.view}px window`)
    assert.equal(await page.locator(`${access} [data-action="rotate"]`).isVisible(), true)
    await page.locator('#sign-out').focus()
    await page.keyboard.press('Enter')
    await page.locator('#sign-in-panel').waitFor()
    assert.equal(await page.locator('#dashboard').isHidden(), true)
    const session = await page.evaluate(async () => (await fetch('/admin/api/session')).status)
    assert.equal(session, 401)
    assert.deepEqual(pageErrors.filter((e) => !/401 \(Unauthorized\)/.test(e)), [], 'no script error or CSP violation')
  })
})
