/**
 * `opts.usage` on a local keyring: counts reach the store under `NAME/HOST/PID` with a report
 * row per flush, a store that does not answer never fails a verification (counts wait in a
 * bounded buffer and arrive once it answers), and misuse is a TypeError.
 */
import assert from 'node:assert/strict'
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import { generateSecret, Keyring, type RekeyError } from '../../../src/index.ts'
import { openStore } from '../../../src/store/open.ts'
import { until } from '../../multi-instance/cluster.ts'

describe('keyring usage reports', () => {
  test('counts per kid reach the store, with the process name and a report row per flush', async (t) => {
    const dir = mkdtempSync(join(os.tmpdir(), 'rekey-usage-'))
    t.after(() => rmSync(dir, { recursive: true, force: true }))
    const db = join(dir, 'usage.db')
    const [a, b] = [generateSecret(), generateSecret()]
    const keyring = Keyring.fromEnv({ JWT_SECRET: a, JWT_SECRET_PREV: b }, { usage: { store: db, name: 'orders-api', flushInterval: 1 } })
    const old = Keyring.fromEnv({ JWT_SECRET: b })
    for (let i = 0; i < 30; i++) keyring.verify(keyring.sign({ sub: 'u' }))
    for (let i = 0; i < 5; i++) keyring.verify(old.sign({ sub: 'u' }))
    assert.throws(() => keyring.verify('x.y.z'))
    const store = await openStore(db)
    t.after(() => store.close())
    const reporter = `orders-api/${os.hostname()}/${process.pid}`
    await until(async () => (await store.usageSince(Date.now() - 120_000)).some((r) => r.kid === keyring.currentKid), 5000, 'the first flush', 100)
    await keyring.close()
    const totals = await store.usageSince(Date.now() - 120_000)
    const count = (kid: string): number => totals.filter((r) => r.kid === kid && r.instanceId === reporter && r.result === 'ok').reduce((n, r) => n + r.count, 0)
    assert.equal(count(keyring.currentKid), 30)
    assert.equal(count(old.currentKid), 5)
    assert.ok(totals.some((r) => r.kid === '' && r.result === 'report' && r.instanceId === reporter), 'a report row says when it last reported')
  })

  test('by default the counts are written every 10 s, and not before (mocked interval timer)', async (t) => {
    const dir = mkdtempSync(join(os.tmpdir(), 'rekey-usage-10s-'))
    t.after(() => rmSync(dir, { recursive: true, force: true }))
    const db = join(dir, 'usage.db')
    t.mock.timers.enable({ apis: ['setInterval'] })
    const keyring = Keyring.fromEnv({ JWT_SECRET: generateSecret() }, { usage: { store: db, name: 'ten' } })
    for (let i = 0; i < 4; i++) keyring.verify(keyring.sign({ sub: 'u' }))
    t.mock.timers.tick(9_999)
    await new Promise((resolve) => setTimeout(resolve, 300))
    assert.equal(existsSync(db), false, 'no flush (the store opens at the first one) before 10 s')
    t.mock.timers.tick(1)
    await until(async () => {
      if (!existsSync(db)) return false
      const store = await openStore(db)
      try {
        return (await store.usageSince(Date.now() - 120_000)).some((r) => r.kid === keyring.currentKid && r.count === 4)
      } finally {
        await store.close()
      }
    }, 10_000, 'the flush at 10 s', 50)
    t.mock.timers.reset()
    await keyring.close()
  })

  test('a store that does not answer never fails a verification, and is warned about once, masked', async (t) => {
    const dir = mkdtempSync(join(os.tmpdir(), 'rekey-usage-down-'))
    t.after(() => rmSync(dir, { recursive: true, force: true }))
    const warnings: string[] = []
    const onWarning = (w: Error): void => { warnings.push(w.message) }
    process.on('warning', onWarning)
    t.after(() => process.off('warning', onWarning))
    const secret = generateSecret()
    // Nothing listens on port 1: every flush fails.
    const down = Keyring.fromEnv({ JWT_SECRET: secret }, { usage: { store: 'postgres://rekey:secret-pw@127.0.0.1:1/none', name: 'billing', flushInterval: 1 } })
    const token = down.sign({ sub: 'u' })
    const started = performance.now()
    for (let i = 0; i < 20_000; i++) down.verify(token)
    assert.ok(performance.now() - started < 5000)
    await new Promise((resolve) => setTimeout(resolve, 2500))
    assert.equal(down.verify(token).payload.sub, 'u', 'still verifying during the outage')
    assert.equal(warnings.filter((w) => /rekey usage report \(billing\)/.test(w)).length, 1, warnings.join('\n'))
    assert.ok(warnings.every((w) => !w.includes('secret-pw')), 'the store password is masked')
    await down.close()
  })

  test('counts kept during an outage arrive once the store answers', async (t) => {
    const dir = mkdtempSync(join(os.tmpdir(), 'rekey-usage-later-'))
    t.after(() => rmSync(dir, { recursive: true, force: true }))
    const blocker = join(dir, 'data')
    writeFileSync(blocker, 'not a directory') // the store's directory cannot exist while this file does
    const db = join(blocker, 'usage.db')
    const secret = generateSecret()
    process.on('warning', () => {})
    const keyring = Keyring.fromEnv({ JWT_SECRET: secret }, { usage: { store: db, name: 'later', flushInterval: 1 } })
    const token = keyring.sign({ sub: 'u' })
    for (let i = 0; i < 12; i++) keyring.verify(token)
    await new Promise((resolve) => setTimeout(resolve, 1500))
    rmSync(blocker)
    mkdirSync(blocker)
    for (let i = 0; i < 3; i++) keyring.verify(token)
    await new Promise((resolve) => setTimeout(resolve, 1500))
    await keyring.close()
    const store = await openStore(db)
    t.after(() => store.close())
    const ok = (await store.usageSince(Date.now() - 300_000)).filter((r) => r.kid === keyring.currentKid && r.result === 'ok')
    assert.equal(ok.reduce((n, r) => n + r.count, 0), 15)
  })

  test('a configuration that fromEnv refuses starts no report: no phantom process in the store', async (t) => {
    const dir = mkdtempSync(join(os.tmpdir(), 'rekey-usage-refused-'))
    t.after(() => rmSync(dir, { recursive: true, force: true }))
    const db = join(dir, 'usage.db')
    const bad = { JWT_SECRET_CURRENT: generateSecret(), JWT_SECRET_NEW: generateSecret(), JWT_SECRET_ROTATION_DATE: 'not a date' }
    assert.throws(() => Keyring.fromEnv(bad, { usage: { store: db, name: 'refused', flushInterval: 1 } }), (err: RekeyError) => err.code === 'ERR_CONFIG')
    // A control on the same store and schedule: once it has flushed twice, a report started by the refused call would have written too.
    const control = Keyring.fromEnv({ JWT_SECRET: generateSecret() }, { usage: { store: db, name: 'control', flushInterval: 1 } })
    t.after(() => control.close())
    await until(async () => {
      const store = await openStore(db)
      try {
        return (await store.usageSince(Date.now() - 120_000)).some((r) => r.instanceId.startsWith('control/') && r.result === 'report' && r.count >= 2)
      } finally {
        await store.close()
      }
    }, 10_000, 'two flushes of the control', 100)
    const store = await openStore(db)
    t.after(() => store.close())
    const reporters = new Set((await store.usageSince(Date.now() - 120_000)).map((r) => r.instanceId.split('/')[0]))
    assert.deepEqual([...reporters], ['control'])
  })

  test('misuse is a TypeError, before any store is opened', () => {
    const secret = generateSecret()
    assert.throws(() => Keyring.fromEnv({ JWT_SECRET: secret }, { usage: { store: '', name: 'x' } }), TypeError)
    assert.throws(() => Keyring.fromEnv({ JWT_SECRET: secret }, { usage: { store: 'a.db', name: 'has space' } }), TypeError)
    assert.throws(() => Keyring.fromKeys([{ secret, state: 'current' }], { usage: { store: 'a.db', name: 'ok', flushInterval: 0 } }), TypeError)
  })
})
