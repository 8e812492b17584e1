// rekey admin dashboard: plain JS, no framework, no network beyond this origin.
// Everything it shows and does goes through the admin API (/api/admin/*) with the session
// cookie and the session's CSRF token; it polls the status every 1.5 s and draws the share
// of verifications per key from the growth of each key's verification count between polls.

const STATUS_EVERY_MS = 1500
const AUDIT_EVERY_MS = 10_000
const CHART_SPAN_MS = 180_000
const AUDIT_ROWS = 50
const SVG = 'http://www.w3.org/2000/svg'
// Per-key colours, apart from the state colours of the timeline (blue, purple, amber, grey, red).
const PALETTE = ['#0f766e', '#be185d', '#65a30d', '#1e3a8a', '#92400e', '#0e7490']

const $ = (id) => document.getElementById(id)

let csrf = ''
let signedIn = false
let statusTimer = 0
let auditTimer = 0
let lastVersion = -1
let serverSkewMs = 0
/** Per secret: the last verification count of each kid, and the share points drawn. */
const history = new Map()
/** A stable colour per kid, in order of first sight. */
const colours = new Map()

class ApiError extends Error {
  constructor (status, body) {
    super(body?.message ?? `HTTP ${status}`)
    this.status = status
    this.code = body?.error ?? 'error'
  }
}

async function api (method, url, body) {
  const headers = { accept: 'application/json' }
  const init = { method, headers, credentials: 'same-origin', cache: 'no-store' }
  if (method !== 'GET') {
    headers['content-type'] = 'application/json'
    headers['x-csrf-token'] = csrf
    init.body = JSON.stringify(body ?? {})
  }
  const res = await fetch(url, init)
  let data = null
  if (res.status !== 204) {
    try { data = await res.json() } catch { data = null }
  }
  if (res.status === 401 && !url.startsWith('/admin/api/sign-in')) {
    showSignIn(data?.message ?? 'Your session ended; sign in again.')
  }
  if (!res.ok && res.status !== 202) throw new ApiError(res.status, data)
  return data
}

// ---------- small DOM helpers ----------

function h (tag, attrs = {}, ...children) {
  const el = document.createElement(tag)
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue
    if (k === 'text') el.textContent = v
    else if (k === 'class') el.className = v
    else el.setAttribute(k, v === true ? '' : String(v))
  }
  for (const c of children) if (c !== null && c !== undefined) el.append(c)
  return el
}

function s (tag, attrs = {}) {
  const el = document.createElementNS(SVG, tag)
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined && v !== null) el.setAttribute(k, String(v))
  return el
}

const pad = (n) => String(n).padStart(2, '0')
function fmt (iso) {
  if (iso === null || iso === undefined) return '—'
  const d = new Date(iso)
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}Z`
}
function timeEl (iso) {
  if (iso === null || iso === undefined) return h('span', { class: 'none', text: '—' })
  return h('time', { datetime: iso, text: fmt(iso) })
}
/** Today's times as HH:MM:SS (UTC), others with their date; the full time in the title. */
function shortTimeEl (iso) {
  if (iso === null || iso === undefined) return h('span', { class: 'none', text: '—' })
  const full = fmt(iso)
  const today = fmt(new Date(serverNow()).toISOString()).slice(0, 10)
  return h('time', { datetime: iso, title: full, text: full.startsWith(today) ? full.slice(11) : full.slice(0, 16) })
}
function ago (ms) {
  const sec = Math.max(0, Math.round(ms / 1000))
  if (sec < 60) return `${sec} s`
  const min = Math.floor(sec / 60)
  if (min < 60) return `${min} min ${pad(sec % 60)} s`
  return `${Math.floor(min / 60)} h ${pad(min % 60)} min`
}
const serverNow = () => Date.now() + serverSkewMs
const pct = (x) => `${Math.round(x * 100)}%`

function colourOf (kid) {
  if (!colours.has(kid)) colours.set(kid, PALETTE[colours.size % PALETTE.length])
  return colours.get(kid)
}

let announceSeq = 0
function announce (message, kind = 'ok') {
  const box = $('announce')
  announceSeq++
  box.className = `announce ${kind}`
  // Replacing the text node makes screen readers read it again even when it repeats.
  box.replaceChildren(h('span', { text: message }))
  box.dataset.seq = String(announceSeq)
}

// ---------- sign-in and session ----------

function showSignIn (message) {
  signedIn = false
  clearTimeout(statusTimer)
  clearTimeout(auditTimer)
  csrf = ''
  $('dashboard').hidden = true
  $('who').hidden = true
  $('sign-in-panel').hidden = false
  $('sign-in-error').textContent = message ?? ''
}

function showDashboard (session) {
  signedIn = true
  csrf = session.csrf
  $('who-email').textContent = session.email
  $('who').hidden = false
  $('sign-in-panel').hidden = true
  $('dashboard').hidden = false
  void pollStatus()
  void pollAudit()
}

async function boot () {
  wireForms()
  try {
    const session = await api('GET', '/admin/api/session')
    showDashboard(session)
  } catch (err) {
    if (err.status !== 401) showSignIn(`Cannot reach the service: ${err.message}`)
  }
}

function wireForms () {
  $('sign-in-form').addEventListener('submit', async (ev) => {
    ev.preventDefault()
    const form = ev.currentTarget
    const button = form.querySelector('button')
    const email = $('sign-in-email').value.trim()
    const password = $('sign-in-password').value
    if (email === '' || password === '') {
      $('sign-in-error').textContent = 'Enter your email and password.'
      return
    }
    button.disabled = true
    $('sign-in-error').textContent = ''
    try {
      const session = await api('POST', '/admin/api/sign-in', { email, password })
      $('sign-in-password').value = ''
      showDashboard(session)
      announce(`Signed in as ${session.email}.`)
      $('main').focus()
    } catch (err) {
      $('sign-in-error').textContent = err.status === 429 ? 'Too many attempts; wait a minute and retry.' : 'Invalid email or password, or not an admin.'
    } finally {
      button.disabled = false
    }
  })

  $('sign-out').addEventListener('click', async () => {
    try {
      await api('POST', '/admin/api/sign-out')
    } catch { /* the cookie is cleared either way below */ }
    history.clear()
    lastVersion = -1
    showSignIn('Signed out.')
  })

  const confirmBox = $('emergency-confirm')
  confirmBox.addEventListener('input', () => { $('emergency-submit').disabled = confirmBox.value !== 'EMERGENCY' })
  $('emergency-form').addEventListener('submit', (ev) => {
    ev.preventDefault()
    if (confirmBox.value !== 'EMERGENCY') return
    const secret = $('emergency-secret').value
    const reason = $('emergency-reason').value.trim()
    if (reason === '') {
      announce('Emergency: give a reason.', 'error')
      $('emergency-reason').focus()
      return
    }
    void act($('emergency-submit'), 'Emergency', () => api('POST', '/api/admin/emergency', { secret, reason }), (r) => {
      confirmBox.value = ''
      $('emergency-submit').disabled = true
      const used = r.usage.reduce((n, u) => n + u.count, 0)
      return `Emergency done: revoked ${r.revoked.map((k) => k.kid).join(', ') || 'no key'}; new keys ${r.created.map((k) => `${k.purpose} ${k.kid}`).join(', ')}; ${r.sessionsEnded} session(s) ended; the revoked keys verified ${used} token(s) in the last 24 h. Every session ended, yours too: sign in again.`
    })
  })

  $('record-form').addEventListener('submit', (ev) => {
    ev.preventDefault()
    const form = ev.currentTarget
    if (!form.reportValidity()) return
    const body = { name: $('record-name').value.trim(), method: $('record-method').value.trim() || 'manual' }
    const notes = $('record-notes').value.trim()
    if (notes !== '') body.notes = notes
    void act(form.querySelector('button'), 'Record', () => api('POST', '/api/admin/record', body), (r) => {
      $('record-name').value = ''
      $('record-notes').value = ''
      return `Recorded a rotation of ${r.secret} (${r.kind}, every ${r.cadenceDays} d); next due ${fmt(r.dueAt)}; audit row ${r.audit.seq}.`
    })
  })
}

/** Runs one action: the button busy meanwhile, the result (or the refusal) announced, then a refresh. */
async function act (button, label, call, describe) {
  button.disabled = true
  button.setAttribute('aria-busy', 'true')
  announce(`${label}: working…`, 'busy')
  try {
    const result = await call()
    announce(describe(result), 'ok')
  } catch (err) {
    if (err.status !== 401) announce(`${label} refused: ${err.message}${err.code && err.code !== 'error' ? ` (${err.code})` : ''}`, 'error')
    else announce(`${label}: ${err.message}`, 'error')
  } finally {
    button.removeAttribute('aria-busy')
    button.disabled = false
    if (signedIn) {
      await pollStatus()
      await pollAudit()
    }
  }
}

// ---------- status: secrets, keys, chart, timeline, instances, due ----------

async function pollStatus () {
  clearTimeout(statusTimer)
  if (!signedIn) return
  try {
    const status = await api('GET', '/api/admin/status')
    serverSkewMs = Date.parse(status.at) - Date.now()
    render(status)
    if (status.keysetVersion !== lastVersion) {
      if (lastVersion !== -1) void pollAudit()
      lastVersion = status.keysetVersion
    }
  } catch (err) {
    if (err.status !== 401) $('meta').textContent = `Status unavailable: ${err.message}. Retrying…`
  }
  if (signedIn) statusTimer = setTimeout(pollStatus, STATUS_EVERY_MS)
}

function render (status) {
  $('meta').replaceChildren(
    `Store ${status.store} · key set version ${status.keysetVersion} · updated `, timeEl(status.at),
  )
  $('meta').dataset.keysetVersion = String(status.keysetVersion)
  const root = $('secrets')
  const seen = new Set()
  for (const secret of status.secrets) {
    // Managed data keys are rotated and finalized from the CLI: finalize counts the values in the application's database.
    if (secret.secret === 'data') continue
    seen.add(secret.secret)
    let card = root.querySelector(`[data-secret="${CSS.escape(secret.secret)}"]`)
    if (card === null) {
      card = secretCard(secret.secret)
      root.append(card)
    }
    updateSecret(card, secret, status)
  }
  for (const card of root.querySelectorAll('[data-secret]')) if (!seen.has(card.dataset.secret)) card.remove()
  renderInstances(status)
  renderDue(status.due)
}

function secretCard (name) {
  const id = `secret-${name}`
  const why = `${id}-finalize-why`
  const card = h('article', { class: 'panel secret', 'data-secret': name, 'aria-labelledby': `${id}-title` },
    h('div', { class: 'secret-head' },
      h('h3', { id: `${id}-title`, text: `${name} keys` }),
      h('span', { class: 'phase', 'data-role': 'phase' }),
    ),
    h('div', { class: 'actions' },
      h('button', { type: 'button', 'data-action': 'rotate', text: 'Rotate' }),
      h('button', { type: 'button', 'data-action': 'finalize', 'aria-describedby': why, text: 'Finalize' }),
      h('button', { type: 'button', 'data-action': 'rollback', text: 'Roll back' }),
    ),
    h('p', { class: 'why', id: why, 'data-role': 'finalize-why' }),
    h('p', { class: 'evidence', 'data-role': 'finalize-evidence' }),
    h('div', { class: 'charts' },
      h('figure', { class: 'chart' },
        h('figcaption', { id: `${id}-share-title`, text: 'Share of verifications per key (per poll interval, up to 3 min)' }),
        h('div', { class: 'svg-box', 'data-role': 'share-chart' }),
        h('ul', { class: 'legend', 'data-role': 'legend', 'aria-label': `${name}: latest share per key` }),
      ),
      h('figure', { class: 'chart' },
        h('figcaption', { text: 'Timeline of each key' }),
        h('div', { class: 'svg-box', 'data-role': 'timeline' }),
        h('ul', { class: 'legend inline', 'aria-hidden': 'true' },
          ...['next', 'current', 'previous', 'retired', 'revoked'].map((st) => h('li', {}, h('span', { class: `swatch state-${st}` }), st)),
          h('li', {}, h('span', { class: 'dash' }), 'finalize safe at'),
        ),
      ),
    ),
    h('div', { class: 'scroll', tabindex: '0', role: 'region', 'aria-label': `${name} keys table` },
      h('table', { class: 'keys' },
        h('thead', {}, h('tr', {}, ...['Key', 'State', 'Created', 'Promoted', 'Demoted', 'Safe to finalize', 'Retired / revoked', 'Verified (1 h)', 'Live sessions', '']
          .map((t) => h('th', { scope: 'col', text: t })))),
        h('tbody', {}),
      ),
    ),
  )
  card.querySelector('[data-action="rotate"]').addEventListener('click', (ev) => {
    void act(ev.currentTarget, `Rotate ${name}`, () => api('POST', '/api/admin/rotate', { secret: name }), (r) => r.promoted
      ? `Rotated ${name}: key ${r.staged.map((k) => k.kid).join(', ')} signs now${r.signingEverywhere ? ' on every instance' : ''}; the old key verifies until finalize${r.finalizeSafeAt ? ` (safe from ${fmt(r.finalizeSafeAt)})` : ''}.`
      : r.waitingFor === 'publication'
        ? `Staged ${name} key ${r.staged.map((k) => k.kid).join(', ')}: published in the JWKS, it signs from ${fmt(r.publishedUntil)} (the scheduler promotes it, or rotate again then).`
        : `Staged ${name} key ${r.staged.map((k) => k.kid).join(', ')}: not every instance has loaded it yet; rotate again to finish.`)
  })
  card.querySelector('[data-action="finalize"]').addEventListener('click', (ev) => {
    void act(ev.currentTarget, `Finalize ${name}`, () => api('POST', '/api/admin/finalize', { secret: name }), (r) => r.changed
      ? `Finalized ${name}: retired ${r.retired.map((k) => k.kid).join(', ')}.`
      : `Finalize ${name}: nothing to retire.`)
  })
  card.querySelector('[data-action="rollback"]').addEventListener('click', (ev) => {
    void act(ev.currentTarget, `Roll back ${name}`, () => api('POST', '/api/admin/rollback', { secret: name }), (r) =>
      `Rolled back ${name}: ${r.changes.map((c) => `${c.kid} ${c.from}→${c.to}`).join('; ')}.`)
  })
  return card
}

/** Finalize's usage evidence: who verified the previous key in the last 5 min, and who reports at all. */
function updateEvidence (card, secret, status) {
  const el = card.querySelector('[data-role="finalize-evidence"]')
  const use = status?.finalizeEvidence?.[secret.secret]
  const reporters = status?.reporters ?? []
  const who = reporters.length === 0
    ? 'No process reports usage yet.'
    : `Reporting: ${reporters.map((r) => `${r.name} (last ${ago(serverNow() - Date.parse(r.lastReportAt))} ago)`).join(', ')}.`
  if (use === undefined) {
    el.textContent = who
    el.dataset.inUse = 'false'
    return false
  }
  el.dataset.inUse = String(use.total > 0)
  el.textContent = use.total > 0
    ? `Evidence: the previous key verified ${use.total} token(s) in the last 5 min on ${use.processes.map((p) => `${p.name} (${p.count})`).join(', ')}; finalize would cut them. ${who}`
    : `Evidence: no reporting process verified a token of the previous key in the last 5 min. ${who}`
  return use.total > 0
}

function updateSecret (card, secret, status) {
  const phase = card.querySelector('[data-role="phase"]')
  phase.textContent = { steady: 'steady', staged: 'staged: waiting for instances', grace: 'grace window' }[secret.phase] ?? secret.phase
  phase.dataset.phase = secret.phase
  card.dataset.phase = secret.phase

  const rotate = card.querySelector('[data-action="rotate"]')
  if (rotate.getAttribute('aria-busy') === null) rotate.textContent = secret.phase === 'staged' ? 'Finish rotation' : 'Rotate'

  const previous = secret.keys.filter((k) => k.state === 'previous')
  const finalize = card.querySelector('[data-action="finalize"]')
  const why = card.querySelector('[data-role="finalize-why"]')
  let allowed = false
  if (previous.length === 0) {
    why.textContent = 'Finalize: nothing to retire (no previous key).'
    why.dataset.safeAt = ''
  } else {
    const unsafe = previous.filter((k) => k.finalizeSafe !== true)
    allowed = unsafe.length === 0
    if (allowed) {
      why.textContent = `Finalize is safe now: no token signed by ${previous.map((k) => k.kid).join(', ')} can still be valid.`
      why.dataset.safeAt = ''
    } else {
      const times = unsafe.map((k) => k.finalizeSafeAt).filter((t) => t !== null).sort()
      const last = times.at(-1) ?? null
      const reasons = unsafe.map((k) => secret.secret === 'refresh' && k.liveSessions > 0
        ? `${k.liveSessions} live session(s) hold refresh tokens signed by ${k.kid}`
        : `access tokens signed by ${k.kid} can still be valid`)
      why.replaceChildren(
        `Finalize is not safe yet: ${reasons.join('; ')}. Safe at `,
        last === null ? 'an unknown time (only --force)' : timeEl(last),
        last === null ? '' : ` (in ${ago(Date.parse(last) - serverNow())}).`,
      )
      why.dataset.safeAt = last ?? ''
    }
  }
  // The server refuses finalize while a reporting process still verifies with the old key.
  if (updateEvidence(card, secret, status)) allowed = false
  if (finalize.getAttribute('aria-busy') === null) finalize.disabled = !allowed
  card.dataset.finalizeAllowed = String(allowed)

  const rollback = card.querySelector('[data-action="rollback"]')
  if (rollback.getAttribute('aria-busy') === null) rollback.disabled = previous.length === 0

  updateKeyRows(card, secret)
  updateShare(card, secret)
  drawTimeline(card.querySelector('[data-role="timeline"]'), secret)
}

function updateKeyRows (card, secret) {
  const body = card.querySelector('tbody')
  const keys = [...secret.keys].sort((a, b) => Date.parse(b.createdAt) - Date.parse(a.createdAt))
  const rows = new Map([...body.querySelectorAll('tr[data-kid]')].map((tr) => [tr.dataset.kid, tr]))
  let before = body.firstChild
  for (const key of keys) {
    let row = rows.get(key.kid)
    if (row === undefined) {
      row = h('tr', { 'data-kid': key.kid })
      for (let i = 0; i < 9; i++) row.append(h('td'))
      const revoke = h('button', { type: 'button', class: 'small', 'data-action': 'revoke', text: 'Revoke', 'aria-label': `Revoke key ${key.kid}` })
      revoke.addEventListener('click', (ev) => {
        const reason = window.prompt(`Revoke key ${key.kid}? It stops verifying everywhere at once.\nReason:`, 'revoked from the dashboard')
        if (reason === null) return
        void act(ev.currentTarget, `Revoke ${key.kid}`, () => api('POST', '/api/admin/revoke', { kid: key.kid, reason: reason.trim() || 'revoked from the dashboard' }), (r) => r.changed
          ? `Revoked ${key.kid}: it no longer verifies anywhere.`
          : `${key.kid} was already revoked.`)
      })
      row.append(h('td', {}, revoke))
    }
    rows.delete(key.kid)
    if (row !== before) body.insertBefore(row, before)
    before = row.nextSibling
    row.dataset.state = key.state
    const cells = row.children
    cells[0].className = 'kid'
    cells[0].replaceChildren(h('span', { class: 'swatch', 'data-colour': colourOf(key.kid) }), h('code', { text: key.kid }))
    paintSwatches(cells[0])
    cells[1].replaceChildren(h('span', { class: `state state-${key.state}`, 'data-role': 'state', text: key.state }))
    cells[2].replaceChildren(shortTimeEl(key.createdAt))
    cells[3].replaceChildren(shortTimeEl(key.activatedAt))
    cells[4].replaceChildren(shortTimeEl(key.demotedAt))
    cells[5].replaceChildren(key.state === 'previous' ? shortTimeEl(key.finalizeSafeAt) : shortTimeEl(null))
    cells[6].replaceChildren(shortTimeEl(key.retiredAt ?? key.revokedAt))
    cells[7].textContent = `${key.verificationsLastHour} (${pct(key.share)})`
    cells[8].textContent = secret.secret === 'refresh' && key.liveSessions !== null ? String(key.liveSessions) : '—'
    const revoke = cells[9].querySelector('button')
    revoke.hidden = !(key.state === 'next' || key.state === 'previous')
  }
  for (const stale of rows.values()) stale.remove()
}

/** Colours come from data attributes: the CSP allows no inline style attributes. */
function paintSwatches (root) {
  for (const el of root.querySelectorAll('[data-colour]')) el.style.backgroundColor = el.dataset.colour
}

function updateShare (card, secret) {
  let hist = history.get(secret.secret)
  const counts = new Map(secret.keys.map((k) => [k.kid, k.verificationsLastHour]))
  const now = Date.now()
  if (hist === undefined) {
    hist = { counts, points: [] }
    history.set(secret.secret, hist)
  } else {
    const deltas = new Map()
    let total = 0
    for (const [kid, count] of counts) {
      // A kid first seen now started from zero; a count that shrank lost an hour-old bucket.
      const d = Math.max(0, count - (hist.counts.get(kid) ?? 0))
      deltas.set(kid, d)
      total += d
    }
    hist.counts = counts
    if (total > 0) {
      const shares = new Map([...deltas].map(([kid, d]) => [kid, d / total]))
      hist.points.push({ t: now, shares, total })
    }
    hist.points = hist.points.filter((p) => p.t >= now - CHART_SPAN_MS)
  }
  drawShare(card.querySelector('[data-role="share-chart"]'), hist, secret, now)

  const legend = card.querySelector('[data-role="legend"]')
  const last = hist.points.at(-1)
  const items = secret.keys.filter((k) => k.state !== 'retired' && k.state !== 'revoked').map((k) => {
    const share = last?.shares.get(k.kid) ?? 0
    const li = h('li', { 'data-kid': k.kid, 'data-share': share.toFixed(3), 'data-state': k.state },
      h('span', { class: 'swatch', 'data-colour': colourOf(k.kid) }),
      h('code', { text: k.kid }), ` ${k.state}: `, h('strong', { text: last === undefined ? 'no traffic yet' : pct(share) }))
    return li
  })
  legend.replaceChildren(...items)
  paintSwatches(legend)
}

/** Draw at the box's own width, so the text stays legible in a narrow window instead of shrinking. */
const widthOf = (box) => Math.max(280, Math.min(1200, Math.round(box.clientWidth || 600)))

function drawShare (box, hist, secret, now) {
  const W = widthOf(box)
  const H = 190
  const L = 40
  const B = 22
  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': shareSummary(hist, secret) })
  // From the first point (at least 30 s back) up to 3 min: the chart fills from the start.
  const first = hist.points[0]?.t ?? now
  const span = Math.min(CHART_SPAN_MS, Math.max(30_000, now - first))
  const x = (t) => L + ((t - (now - span)) / span) * (W - L - 8)
  const y = (v) => 6 + (1 - v) * (H - B - 6)
  for (const v of [0, 0.5, 1]) {
    svg.append(s('line', { x1: L, x2: W - 8, y1: y(v), y2: y(v), class: 'gridline' }))
    const label = s('text', { x: L - 6, y: y(v) + 4, 'text-anchor': 'end', class: 'axis' })
    label.textContent = pct(v)
    svg.append(label)
  }
  for (const [t, text] of [[now - span, `−${ago(span)}`], [now - span / 2, `−${ago(span / 2)}`], [now, 'now']]) {
    const label = s('text', { x: x(t), y: H - 6, 'text-anchor': t === now ? 'end' : 'start', class: 'axis' })
    label.textContent = text
    svg.append(label)
  }
  const kids = new Set(secret.keys.map((k) => k.kid))
  for (const p of hist.points) for (const kid of p.shares.keys()) kids.add(kid)
  for (const kid of kids) {
    const pts = hist.points.map((p) => [x(p.t), y(p.shares.get(kid) ?? 0)])
    if (pts.length === 0 || hist.points.every((p) => (p.shares.get(kid) ?? 0) === 0)) continue
    const colour = colourOf(kid)
    svg.append(s('polyline', { points: pts.map(([a, b]) => `${a.toFixed(1)},${b.toFixed(1)}`).join(' '), fill: 'none', stroke: colour, 'stroke-width': 2.5, 'stroke-linejoin': 'round', 'data-kid': kid }))
    const [lx, ly] = pts.at(-1)
    svg.append(s('circle', { cx: lx, cy: ly, r: 3.5, fill: colour }))
  }
  if (hist.points.length === 0) {
    const t = s('text', { x: W / 2, y: H / 2, 'text-anchor': 'middle', class: 'axis' })
    t.textContent = 'Waiting for verifications…'
    svg.append(t)
  }
  box.replaceChildren(svg)
}

function shareSummary (hist, secret) {
  const last = hist.points.at(-1)
  if (last === undefined) return `${secret.secret}: no verifications seen yet`
  return `${secret.secret}: latest share of verifications, ${[...last.shares].map(([kid, v]) => `${kid} ${pct(v)}`).join(', ')}`
}

function drawTimeline (box, secret) {
  const W = widthOf(box)
  const row = 24
  const now = serverNow()
  const DAY = 86_400_000
  // Keys retired or revoked more than a day ago would squash the rest of the timeline.
  const keys = [...secret.keys]
    .filter((k) => { const end = k.retiredAt ?? k.revokedAt; return end === null || Date.parse(end) > now - DAY })
    .sort((a, b) => Date.parse(a.createdAt) - Date.parse(b.createdAt))
  const H = keys.length * row + 24
  const times = keys.flatMap((k) => [k.createdAt, k.state === 'previous' ? k.finalizeSafeAt : null].filter((t) => t !== null).map(Date.parse))
  const t0 = Math.min(...times, now)
  const t1 = Math.max(...times, now) + 1000
  const narrow = W < 450
  const L = narrow ? 118 : 150
  const R = W - 8
  const x = (t) => L + ((t - t0) / (t1 - t0)) * (R - L)
  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': `${secret.secret} keys over time: ${keys.map((k) => `${k.kid} ${k.state}`).join(', ')}` })
  keys.forEach((k, i) => {
    const top = i * row + 4
    const end = Date.parse(k.retiredAt ?? k.revokedAt ?? new Date(now).toISOString())
    const created = Date.parse(k.createdAt)
    const promoted = k.activatedAt === null ? null : Date.parse(k.activatedAt)
    const demoted = k.demotedAt === null ? null : Date.parse(k.demotedAt)
    const segments = [['next', created, promoted ?? demoted ?? end]]
    if (promoted !== null) segments.push(['current', promoted, demoted ?? end])
    if (demoted !== null) segments.push(['previous', demoted, end])
    for (const [state, a, b] of segments) {
      if (b < a) continue
      svg.append(s('rect', { x: x(a), y: top + 2, width: Math.max(2, x(b) - x(a)), height: row - 10, class: `seg seg-${state}`, rx: 3 }))
    }
    if (k.state === 'retired' || k.state === 'revoked') svg.append(s('rect', { x: x(end) - 2, y: top, width: 4, height: row - 6, class: `seg seg-${k.state}` }))
    if (k.state === 'previous' && k.finalizeSafeAt !== null) {
      const sx = x(Date.parse(k.finalizeSafeAt))
      svg.append(s('line', { x1: sx, x2: sx, y1: top - 2, y2: top + row - 4, class: 'safe' }))
    }
    const label = s('text', { x: 4, y: top + row - 10, class: 'seg-label' })
    label.textContent = `${k.kid.slice(0, narrow ? 6 : 10)}… ${k.state}`
    svg.append(label)
  })
  svg.append(s('line', { x1: x(now), x2: x(now), y1: 0, y2: H - 18, class: 'now' }))
  const l0 = s('text', { x: L, y: H - 5, class: 'axis' })
  l0.textContent = fmt(new Date(t0).toISOString())
  const l1 = s('text', { x: R, y: H - 5, class: 'axis', 'text-anchor': 'end' })
  l1.textContent = t1 - 1000 > now + 1000 ? fmt(new Date(t1 - 1000).toISOString()) : 'now'
  svg.append(l0, l1)
  box.replaceChildren(svg)
}

function renderInstances (status) {
  const body = $('instances').querySelector('tbody')
  const now = serverNow()
  if (status.instances.length === 0) {
    body.replaceChildren(h('tr', {}, h('td', { colspan: '4', text: 'No live instance.' })))
    return
  }
  body.replaceChildren(...status.instances.map((i) => h('tr', { 'data-instance': i.instanceId, 'data-up-to-date': String(i.upToDate) },
    h('td', {}, h('code', { text: i.instanceId.length > 14 ? `${i.instanceId.slice(0, 8)}…` : i.instanceId, title: i.instanceId })),
    h('td', { text: `${i.hostname} · ${i.pid}` }),
    h('td', {}, h('span', { class: i.upToDate ? 'good' : 'warn', text: `v${i.keysetVersion}${i.upToDate ? ' (up to date)' : ` (store has v${status.keysetVersion})`}` })),
    h('td', {}, shortTimeEl(i.lastSeen), ` (${ago(now - Date.parse(i.lastSeen))} ago)`),
  )))
}

function renderDue (due) {
  const box = $('due')
  if (due.length === 0) {
    box.replaceChildren(h('p', { class: 'good', text: 'Nothing due within 7 days.' }))
    return
  }
  box.replaceChildren(h('div', { class: 'scroll', tabindex: '0', role: 'region', 'aria-label': 'Secrets due' },
    h('table', {},
      h('thead', {}, h('tr', {}, ...['Secret', 'Kind', 'Status', 'Due at', 'Last rotated'].map((t) => h('th', { scope: 'col', text: t })))),
      h('tbody', {}, ...due.map((d) => h('tr', {},
        h('td', {}, h('code', { text: d.name })), h('td', { text: d.kind }),
        h('td', {}, h('span', { class: d.status === 'overdue' ? 'bad' : 'warn', text: d.status })),
        h('td', {}, timeEl(d.dueAt)), h('td', {}, timeEl(d.lastRotatedAt)),
      ))),
    ),
  ))
}

// ---------- audit ----------

async function pollAudit () {
  clearTimeout(auditTimer)
  if (!signedIn) return
  try {
    const since = new Date(Date.now() - 30 * 86_400_000).toISOString()
    const [chain, audit] = await Promise.all([
      api('GET', '/api/admin/audit/verify'),
      api('GET', `/api/admin/audit?since=${encodeURIComponent(since)}&limit=10000`),
    ])
    const p = $('chain')
    p.dataset.ok = String(chain.ok)
    p.className = `chain ${chain.ok ? 'good' : 'bad'}`
    p.textContent = chain.ok
      ? `Hash chain intact: ${chain.rows} row(s)${chain.head ? `, head ${chain.head.seq}:${chain.head.hash.slice(0, 16)}` : ''}.`
      : `Hash chain BROKEN at row ${chain.firstBad.seq}: ${chain.firstBad.reason}.`
    const rows = audit.events.slice(-AUDIT_ROWS).reverse()
    $('audit').querySelector('tbody').replaceChildren(...rows.map((e) => h('tr', { 'data-method': e.method },
      h('td', {}, shortTimeEl(new Date(e.at).toISOString())), h('td', { text: e.secret }), h('td', { text: e.operator }),
      h('td', { text: e.method }), h('td', { class: 'notes', text: e.notes }), h('td', {}, h('code', { text: e.requestId === null ? '—' : e.requestId.slice(0, 8), title: e.requestId ?? '' })),
    )))
  } catch (err) {
    if (err.status !== 401) $('chain').textContent = `Audit log unavailable: ${err.message}`
  }
  if (signedIn) auditTimer = setTimeout(pollAudit, AUDIT_EVERY_MS)
}

void boot()
