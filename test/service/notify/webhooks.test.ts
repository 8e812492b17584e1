/**
 * Reminders and rotation notices posted to a real HTTP server on 127.0.0.1 that captures them,
 * with a frozen clock: each reminder stage once across two instances, notices after commit,
 * nothing without REKEY_WEBHOOK_URL, a failing webhook never failing a rotation, no secret in a text.
 */
import assert from 'node:assert/strict'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { keyInputOf } from '../../../src/service/keys/keys.ts'
import { runCli } from '../../cli/helpers.ts'
import { reminderStage } from '../../../src/service/notify/webhooks.ts'
import { TestClock, testServer, type TestServer } from '../../http/support.ts'

const DAY = 86_400_000
const T0 = Date.UTC(2026, 2, 1, 12)
const TOKEN = 'XXsecretWebhookToken0123456789'

/** A webhook receiver: records every JSON body; `status` is what it answers. */
async function receiver(): Promise<{ url: string, posts: Array<{ text: string }>, status: { code: number }, close: () => Promise<void>, server: Server }> {
  const posts: Array<{ text: string }> = []
  const status = { code: 200 }
  const server = createServer((req, res) => {
    let body = ''
    req.on('data', (c: Buffer) => { body += c.toString('utf8') })
    req.on('end', () => {
      posts.push(JSON.parse(body) as { text: string })
      res.writeHead(status.code, { 'content-type': 'text/plain' }).end(status.code === 200 ? 'ok' : 'no')
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return { url: `http://127.0.0.1:${port}/services/T000/B000/${TOKEN}`, posts, status, server, close: () => new Promise((resolve) => server.close(() => resolve())) }
}

test('reminder stages: T-7d from a week before, T-1d from a day before, T-0 from the due date', () => {
  const due = T0 + 10 * DAY
  assert.deepEqual([-8 * DAY, -7 * DAY, -2 * DAY, -DAY, -1, 0, 30 * DAY].map((d) => reminderStage(due, due + d)), [null, 'T-7d', 'T-7d', 'T-1d', 'T-1d', 'T-0', 'T-0'])
})

describe('webhooks from the service', () => {
  let hook: Awaited<ReturnType<typeof receiver>>
  let dir: string
  let clock: TestClock
  let a: TestServer
  let b: TestServer

  before(async () => {
    hook = await receiver()
    dir = mkdtempSync(join(tmpdir(), 'rekey-webhooks-'))
    clock = new TestClock(T0)
    const env = { REKEY_SCHEDULER_INTERVAL: '86400', REKEY_WEBHOOK_URL: hook.url }
    a = await testServer({ dir, clock, env, instanceId: 'a' })
    b = await testServer({ dir, clock, env, instanceId: 'b' })
    // A secret rotated by hand (as `rekey record` files it): SMTP, every 180 days, due at T0 + 10 d.
    await a.service.store.upsertSecret({ name: 'SMTP_PASSWORD', kind: 'smtp', cadenceDays: 180 })
    await a.service.store.markRotated({ name: 'SMTP_PASSWORD', at: T0 - 170 * DAY, method: 'manual' })
  })
  after(async () => {
    await a.stop()
    await b.stop()
    await hook.close()
    rmSync(dir, { recursive: true, force: true })
  })

  const tickBoth = async (): Promise<void> => {
    await Promise.all([a.service.scheduler?.tick(), b.service.scheduler?.tick()])
    await Promise.all([a.service.webhooks?.flush(), b.service.webhooks?.flush()])
  }

  test('each reminder stage is sent exactly once across two instances', async () => {
    await tickBoth()
    assert.equal(hook.posts.length, 0, 'not within 7 days yet')
    const seen: string[] = []
    for (const at of [T0 + 3 * DAY, T0 + 3 * DAY + 3_600_000, T0 + 5 * DAY, T0 + 9 * DAY, T0 + 9 * DAY + 60_000, T0 + 10 * DAY, T0 + 12 * DAY]) {
      clock.advance(at - clock.now())
      await tickBoth()
      await tickBoth()
      seen.push(String(hook.posts.length))
    }
    assert.deepEqual(seen, ['1', '1', '1', '2', '2', '3', '3'])
    assert.match(hook.posts[0]?.text ?? '', /^:alarm_clock: rekey reminder: SMTP_PASSWORD \(smtp\) is due for rotation in 7 days \(2026-03-11T12:00:00Z\); rotate it, then run `rekey record SMTP_PASSWORD`$/)
    assert.match(hook.posts[1]?.text ?? '', /SMTP_PASSWORD \(smtp\) is due for rotation in 1 day/)
    assert.match(hook.posts[2]?.text ?? '', /SMTP_PASSWORD \(smtp\) is due for rotation now/)
  })

  test('a rotation posts a notice when it starts and when it completes, after commit, with no secret in the text', async () => {
    hook.posts.length = 0
    const report = await a.service.rotation.rotate({ secret: 'access', actor: { operator: 'alice', requestId: null } })
    await a.service.webhooks?.flush()
    const kid = report.staged[0]?.kid as string
    assert.equal(hook.posts.length, 2)
    assert.match(hook.posts[0]?.text ?? '', new RegExp(`rotation of jwt-access started by alice \\(staged ${kid}`))
    assert.match(hook.posts[1]?.text ?? '', new RegExp(`rotation of jwt-access completed by alice: ${kid} now signs; finalize is safe from 20`))
    const masterKey = Buffer.from(readFileSync(join(dir, 'master.key'), 'utf8').trim(), 'base64')
    const secrets = (await a.service.store.listKeys()).map((k) => Buffer.from((keyInputOf(masterKey, k) as unknown as { secret: Uint8Array }).secret))
    const everything = JSON.stringify(hook.posts) + a.logs.text + b.logs.text
    for (const s of [...secrets, masterKey]) {
      for (const enc of ['base64', 'base64url', 'hex'] as const) assert.ok(!everything.includes(s.toString(enc)), 'no key material in a text or a log')
    }
    assert.ok(!everything.includes(TOKEN), 'the webhook URL (its token) is never logged')
  })

  test('a rotation from the CLI posts the same notices before it exits', async () => {
    hook.posts.length = 0
    const r = await runCli(['--store', join(dir, 'rekey.db'), '--operator', 'carol', 'rotate', '--secret', 'access'], { REKEY_WEBHOOK_URL: hook.url })
    assert.equal(r.code, 0, r.stderr)
    assert.deepEqual(hook.posts.map((p) => /rotation of jwt-access (started|completed) by carol/.exec(p.text)?.[1]), ['started', 'completed'])
  })

  test('a failing webhook does not break a rotation; the failure is logged', async () => {
    hook.status.code = 500
    hook.posts.length = 0
    const report = await b.service.rotation.rotate({ secret: 'refresh', actor: { operator: 'bob', requestId: null } })
    await b.service.webhooks?.flush()
    assert.equal(report.promoted, true)
    assert.equal(hook.posts.length, 2, 'both notices were attempted')
    assert.match(b.logs.text, /webhook answered with an error status/)
    hook.status.code = 200
  })

  test('an emergency posts its notice, with the reason and the new kids', async () => {
    hook.posts.length = 0
    const report = await a.service.rotation.emergency({ secret: 'access', reason: 'key pushed to a public repo', actor: { operator: 'dave', requestId: null } })
    await a.service.webhooks?.flush()
    assert.equal(hook.posts.length, 1)
    assert.match(hook.posts[0]?.text ?? '', new RegExp(`emergency rotation of jwt-access by dave: revoked keys cut, ${report.created[0]?.kid} now signs; reason: key pushed to a public repo`))
  })
})

test('without REKEY_WEBHOOK_URL nothing is sent and no reminder is marked sent; an unreachable webhook does not break rotation', async () => {
  const hook = await receiver()
  const dir = mkdtempSync(join(tmpdir(), 'rekey-webhooks-'))
  const clock = new TestClock(T0)
  const quiet = await testServer({ dir, clock, env: { REKEY_SCHEDULER_INTERVAL: '86400' } })
  try {
    assert.equal(quiet.service.webhooks, null)
    await quiet.service.store.upsertSecret({ name: 'SMTP_PASSWORD', kind: 'smtp', cadenceDays: 180 })
    await quiet.service.store.markRotated({ name: 'SMTP_PASSWORD', at: T0 - 180 * DAY, method: 'manual' })
    const tick = await quiet.service.scheduler?.tick()
    assert.equal(tick?.reminders, 0)
    assert.deepEqual((await quiet.service.store.getSecret('SMTP_PASSWORD'))?.reminders.stages, [])
    assert.equal((await quiet.service.rotation.rotate({ secret: 'access', actor: { operator: 'alice', requestId: null } })).promoted, true)
    assert.deepEqual(hook.posts, [])
  } finally {
    await quiet.stop()
  }
  // A webhook on a port nobody listens on: the rotation and the tick still succeed.
  const closedUrl = hook.url
  await hook.close()
  const loud = await testServer({ dir, clock, env: { REKEY_SCHEDULER_INTERVAL: '86400', REKEY_WEBHOOK_URL: closedUrl } })
  try {
    assert.equal((await loud.service.rotation.rotate({ secret: 'access', actor: { operator: 'alice', requestId: null } })).promoted, true)
    const tick = await loud.service.scheduler?.tick()
    await loud.service.webhooks?.flush()
    assert.equal(tick?.ran, true)
    assert.equal(tick?.reminders, 0)
    assert.match(loud.logs.text, /webhook post failed/)
  } finally {
    await loud.stop()
    rmSync(dir, { recursive: true, force: true })
  }
})

test('a reminder sent 5 days before the due date says 5 days, not the stage\'s 7 (issue 10, item 8)', async () => {
  const hook = await receiver()
  const dir = mkdtempSync(join(tmpdir(), 'rekey-webhooks-'))
  const clock = new TestClock(T0)
  const server = await testServer({ dir, clock, env: { REKEY_SCHEDULER_INTERVAL: '86400', REKEY_WEBHOOK_URL: hook.url } })
  try {
    // Rotated by hand 175 days ago on a 180-day cadence: the first tick is already 5 days before it is due.
    await server.service.store.upsertSecret({ name: 'SMTP_PASSWORD', kind: 'smtp', cadenceDays: 180 })
    await server.service.store.markRotated({ name: 'SMTP_PASSWORD', at: T0 - 175 * DAY, method: 'manual' })
    const tick = await server.service.scheduler?.tick()
    await server.service.webhooks?.flush()
    assert.equal(tick?.reminders, 1)
    assert.equal(hook.posts.length, 1)
    assert.match(hook.posts[0]?.text ?? '', /^:alarm_clock: rekey reminder: SMTP_PASSWORD \(smtp\) is due for rotation in 5 days \(2026-03-06T12:00:00Z\)/)
  } finally {
    await server.stop()
    await hook.close()
    rmSync(dir, { recursive: true, force: true })
  }
})
