/**
 * Item 7 of issue 15: the metrics the runbooks need, and the shipped alerting rules and
 * Grafana dashboard, which may only name series a real rekey exports.
 */
import assert from 'node:assert/strict'
import { execFileSync, spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'
import { parse } from 'yaml'
import { signedIn, testServer, type TestServer } from '../http/support.ts'

const ROOT = path.resolve(import.meta.dirname, '../..')
const RULES = path.join(ROOT, 'examples/prometheus/rekey.rules.yml')
const RULES_TEST = path.join(ROOT, 'examples/prometheus/rekey.rules.test.yml')
const DASHBOARD = path.join(ROOT, 'examples/grafana/rekey-dashboard.json')
const TOKEN = 'metrics-token-for-monitoring-0123456789'

/** The metric names an expression reads (`rekey_...`), recording rules (`rekey:...`) aside. */
function metricNames(expr: string): string[] {
  return [...expr.matchAll(/\brekey_[a-z_]+/g)].map((m) => m[0].replace(/_(bucket|sum|count)$/, ''))
}

describe('metrics for the runbooks', () => {
  let server: TestServer
  let exposition = ''
  before(async () => {
    server = await testServer({ env: { METRICS_AUTH_TOKEN: TOKEN } })
    const { accessToken } = await signedIn(server)
    assert.equal((await server.request('GET', '/api/auth/me', { token: accessToken })).statusCode, 200)
    assert.equal((await server.request('GET', '/no/such/path/12345')).statusCode, 404)
    const metrics = await server.request('GET', '/metrics', { token: TOKEN })
    assert.equal(metrics.statusCode, 200)
    exposition = metrics.body
  })
  after(async () => { await server.stop() })

  test('an HTTP request-duration histogram per route pattern, method and status', () => {
    assert.match(exposition, /# TYPE rekey_http_request_duration_seconds histogram/)
    assert.match(exposition, /rekey_http_request_duration_seconds_bucket\{le="0\.05",method="POST",route="\/api\/auth\/login",status_code="200"\} 1/)
    assert.match(exposition, /rekey_http_request_duration_seconds_count\{method="GET",route="\/api\/auth\/me",status_code="200"\} 1/)
    // An unknown path is one bounded label value, never the raw path.
    assert.match(exposition, /route="unmatched",status_code="404"/)
    assert.doesNotMatch(exposition, /no\/such\/path/)
  })

  test('verification-duration buckets reach 1 s', () => {
    const buckets = [...exposition.matchAll(/rekey_token_verify_duration_seconds_bucket\{le="([^"]+)",purpose="access"\}/g)].map((m) => m[1])
    assert.ok(buckets.includes('0.05') && buckets.includes('1') && buckets.includes('+Inf'), buckets.join(','))
  })

  test('a due date per tracked secret', () => {
    assert.match(exposition, /rekey_secret_due_timestamp_seconds\{secret="[^"]+",kind="[^"]+"\} \d+/)
  })

  test('the alerting rules and the dashboard read only series rekey exports', () => {
    const exported = new Set([...exposition.matchAll(/^# TYPE (\S+)/gm)].map((m) => m[1] as string))
    const rules = parse(readFileSync(RULES, 'utf8')) as { groups: { rules: { record?: string, alert?: string, expr: string }[] }[] }
    const recorded = new Set<string>()
    const alerts: string[] = []
    const exprs: string[] = []
    for (const group of rules.groups) {
      for (const rule of group.rules) {
        if (rule.record !== undefined) recorded.add(rule.record)
        if (rule.alert !== undefined) alerts.push(rule.alert)
        exprs.push(rule.expr)
      }
    }
    assert.deepEqual(alerts.sort(), ['RekeyAuthSuccessLow', 'RekeyErrorRateHigh', 'RekeyInstanceBehindKeySet', 'RekeyLatencyP99High', 'RekeyOldKeyShareNotFalling', 'RekeySecretOverdue'])
    const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as { panels: { title: string, targets: { expr: string }[] }[] }
    for (const panel of dashboard.panels) for (const target of panel.targets) exprs.push(target.expr)
    for (const expr of exprs) {
      for (const name of metricNames(expr)) assert.ok(exported.has(name), `${name} (in ${expr.trim().slice(0, 60)}...) is exported`)
      for (const rec of expr.match(/\brekey:[a-z0-9_:]+/g) ?? []) assert.ok(recorded.has(rec), `${rec} is a recording rule`)
    }
    const titles = dashboard.panels.map((p) => p.title).join('\n')
    for (const chart of ['Share of verifications per key', 'Live sessions', 'Key set loaded per instance', 'Secrets due']) assert.ok(titles.includes(chart), `the dashboard has ${chart}, as /admin`)
  })
})

describe('promtool', () => {
  // CI (.ci/run) unpacks Debian's prometheus package and sets REKEY_PROMTOOL.
  const promtool = process.env.REKEY_PROMTOOL ?? 'promtool'
  const found = spawnSync(promtool, ['--version']).status === 0
  test('promtool check rules and promtool test rules pass', { skip: found || process.env.REKEY_REQUIRE_PROMTOOL === '1' ? false : 'promtool is not installed (Debian: prometheus); .ci/run installs it' }, () => {
    execFileSync(promtool, ['check', 'rules', RULES], { stdio: 'pipe' })
    execFileSync(promtool, ['test', 'rules', RULES_TEST], { cwd: path.dirname(RULES_TEST), stdio: 'pipe' })
  })
})
