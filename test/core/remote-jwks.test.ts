/**
 * `Keyring.fromJwks` and `jwksUrl` in both middlewares, against a real JWKS host on loopback:
 * kid-addressed keys, Cache-Control, one refetch per cooldown for unknown kids (single flight),
 * the last good set while the host is down, and a kid whose key material changes refused.
 */
import assert from 'node:assert/strict'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import os from 'node:os'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import express from 'express'
import Fastify from 'fastify'
import { Keyring, RekeyError } from '../../src/index.ts'
import { requireAuth } from '../../src/middleware/express.ts'
import { rekeyAuth } from '../../src/middleware/fastify.ts'
import { openStore } from '../../src/store/open.ts'
import { until } from '../multi-instance/cluster.ts'
import { jwksHost, newSigner } from './jwks-server.ts'

const code = (fn: () => unknown): string => {
  try {
    fn()
  } catch (err) {
    return (err as RekeyError).code ?? (err as Error).name
  }
  return 'ok'
}

describe('Keyring.fromJwks', () => {
  const a = newSigner('key-a')
  const b = newSigner('key-b')

  it('verifies with the published keys, is verify-only, and never signs', async (t) => {
    const host = await jwksHost([a.publicJwk])
    t.after(() => host.close())
    const keyring = await Keyring.fromJwks(host.url, { audience: 'api' })
    t.after(() => keyring.close())
    const token = a.keyring.sign({ sub: 'u1' }, { audience: 'api' })
    const result = keyring.verify(token)
    assert.equal(result.payload.sub, 'u1')
    assert.equal(result.kid, 'key-a')
    assert.equal(keyring.verifyOnly, true)
    // The verify defaults apply: another audience is refused.
    assert.equal(code(() => keyring.verify(a.keyring.sign({ sub: 'u1' }, { audience: 'other' }))), 'ERR_TOKEN_CLAIM')
    assert.throws(() => keyring.sign({ sub: 'x' }), TypeError)
    assert.deepEqual(keyring.list().map((k) => k.kid), ['key-a'])
    assert.equal(host.hits, 1)
    assert.equal(keyring.remote?.fetches, 1)
    assert.ok(!JSON.stringify(keyring).includes(String(a.publicJwk.x)), 'the keyring shows no key material')
  })

  it('an unknown kid refetches once per cooldown, one request for concurrent tokens', async (t) => {
    const host = await jwksHost([a.publicJwk])
    t.after(() => host.close())
    const keyring = await Keyring.fromJwks(host.url, { cooldown: 0 })
    t.after(() => keyring.close())
    host.keys = [a.publicJwk, b.publicJwk]
    host.delayMs = 50
    const token = b.keyring.sign({ sub: 'u2' })
    // The synchronous path refuses at once and starts the refetch; 20 callers share it.
    assert.equal(code(() => keyring.verify(token)), 'ERR_KEY_UNKNOWN')
    const changed = await Promise.all(Array.from({ length: 20 }, () => keyring.refreshForUnknownKid()))
    assert.ok(changed.every((c) => c === true))
    assert.equal(host.hits, 2, 'one refetch for all of them')
    assert.equal(keyring.verify(token).kid, 'key-b')

    const slow = await Keyring.fromJwks(host.url, { cooldown: '1h' })
    t.after(() => slow.close())
    const c = newSigner('key-c')
    host.keys = [a.publicJwk, b.publicJwk, c.publicJwk]
    const hits = host.hits
    // Fetched less than an hour ago: a forged kid flood costs the host nothing.
    for (let i = 0; i < 50; i++) assert.equal(code(() => slow.verify(c.keyring.sign({ sub: 'x' }))), 'ERR_KEY_UNKNOWN')
    assert.equal(await slow.refreshForUnknownKid(), false)
    assert.equal(host.hits, hits)
  })

  it('by default an unknown kid refetches at most once per 30 s (frozen clock)', async (t) => {
    const host = await jwksHost([a.publicJwk])
    t.after(() => host.close())
    t.mock.timers.enable({ apis: ['Date'], now: Date.now() })
    const keyring = await Keyring.fromJwks(host.url)
    t.after(() => keyring.close())
    host.keys = [a.publicJwk, b.publicJwk]
    const token = b.keyring.sign({ sub: 'u' })
    t.mock.timers.tick(29_000)
    assert.equal(code(() => keyring.verify(token)), 'ERR_KEY_UNKNOWN')
    assert.equal(await keyring.refreshForUnknownKid(), false, '29 s after the fetch: still cooling down')
    assert.equal(host.hits, 1)
    t.mock.timers.tick(2000)
    assert.equal(await keyring.refreshForUnknownKid(), true, '31 s after: one refetch')
    assert.equal(host.hits, 2)
    assert.equal(keyring.verify(token).kid, 'key-b')
  })

  it('honours Cache-Control max-age', async (t) => {
    const host = await jwksHost([a.publicJwk])
    host.cacheControl = 'max-age=1'
    t.after(() => host.close())
    const keyring = await Keyring.fromJwks(host.url, { cooldown: 0 })
    t.after(() => keyring.close())
    const fresh = Date.parse(keyring.remote?.freshUntil ?? '') - Date.now()
    assert.ok(fresh > 0 && fresh <= 1000, `fresh for ${fresh} ms`)
    host.keys = [b.publicJwk]
    await new Promise((resolve) => setTimeout(resolve, 1300))
    assert.equal(host.hits, 2, 'refetched when max-age ran out')
    assert.equal(keyring.verify(b.keyring.sign({ sub: 'u' })).kid, 'key-b')
    assert.equal(code(() => keyring.verify(a.keyring.sign({ sub: 'u' }))), 'ERR_KEY_UNKNOWN', 'a key gone from the set no longer verifies')
  })

  it('serves the last good key set while the host is down, and counts the failures', async (t) => {
    const host = await jwksHost([a.publicJwk])
    t.after(() => host.close())
    const errors: string[] = []
    const keyring = await Keyring.fromJwks(host.url, { cooldown: 0, onError: (err) => errors.push(err.code) })
    t.after(() => keyring.close())
    host.down = true
    assert.equal(code(() => keyring.verify(b.keyring.sign({ sub: 'u' }))), 'ERR_KEY_UNKNOWN')
    assert.equal(await keyring.refreshForUnknownKid(), false)
    assert.equal(keyring.verify(a.keyring.sign({ sub: 'u' })).kid, 'key-a', 'the last good set still verifies')
    const status = keyring.remote
    assert.ok((status?.failures ?? 0) >= 1)
    assert.equal(status?.stale, true)
    assert.match(status?.lastError ?? '', /HTTP 503/)
    assert.ok(errors.includes('ERR_JWKS_UNAVAILABLE'))
    host.down = false
    assert.equal(await keyring.refreshForUnknownKid(), false, 'back, with the same keys')
    assert.equal(keyring.remote?.stale, false)
    assert.equal(keyring.remote?.lastError, null)
  })

  it('refuses a kid whose key material changes under the same kid', async (t) => {
    const host = await jwksHost([a.publicJwk])
    t.after(() => host.close())
    const keyring = await Keyring.fromJwks(host.url, { cooldown: 0, onError: () => {} })
    t.after(() => keyring.close())
    const impostor = newSigner('key-a') // same kid, other key
    host.keys = [impostor.publicJwk, b.publicJwk]
    assert.equal(code(() => keyring.verify(b.keyring.sign({ sub: 'u' }))), 'ERR_KEY_UNKNOWN')
    assert.equal(await keyring.refreshForUnknownKid(), true)
    for (const signer of [a, impostor]) {
      assert.throws(() => keyring.verify(signer.keyring.sign({ sub: 'u' })), (err: RekeyError) => err.code === 'ERR_KEY_REVOKED' && /changed its key material/.test(err.message))
    }
    assert.deepEqual(keyring.remote?.refusedKids, ['key-a'])
    assert.equal(keyring.verify(b.keyring.sign({ sub: 'u' })).kid, 'key-b', 'other keys are unaffected')
  })

  it('rejects when the first fetch fails, and misuse throws TypeError', async (t) => {
    const host = await jwksHost([a.publicJwk])
    t.after(() => host.close())
    host.down = true
    await assert.rejects(Keyring.fromJwks(host.url), (err: RekeyError) => err.code === 'ERR_JWKS_UNAVAILABLE' && !err.message.includes('secret'))
    await assert.rejects(Keyring.fromJwks('http://127.0.0.1:1/jwks.json', { timeout: 1 }), (err: RekeyError) => err.code === 'ERR_JWKS_UNAVAILABLE')
    await assert.rejects(Keyring.fromJwks('ftp://example.com/jwks.json'), TypeError)
    await assert.rejects(Keyring.fromJwks(host.url, { cooldown: 'soon' }), TypeError)
    await assert.rejects(Keyring.fromJwks(host.url, { audiance: 'api' } as never), /unknown option "audiance"/)
    const plain = await jwksHost([])
    t.after(() => plain.close())
    plain.keys = 'nope' as never
    await assert.rejects(Keyring.fromJwks(plain.url), (err: RekeyError) => err.code === 'ERR_CONFIG')
  })

  it('stops reading a wrong URL that streams without a length at 1 MiB, long before the timeout', async (t) => {
    // Chunked, no content-length: a JWK Set that never ends until the client hangs up.
    const server = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' })
      res.write('{"keys":[')
      const chunk = ' '.repeat(65_536)
      const pump = (): void => {
        while (!res.destroyed && res.write(chunk));
        if (!res.destroyed) res.once('drain', pump)
      }
      pump()
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    t.after(() => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()) }))
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks.json`
    const started = performance.now()
    await assert.rejects(Keyring.fromJwks(url, { timeout: 30 }), (err: RekeyError) => err.code === 'ERR_CONFIG' && /answered more than 1048576 bytes/.test(err.message))
    assert.ok(performance.now() - started < 25_000, 'refused at the cap, not at the timeout')
  })
})

describe('jwksUrl in the middlewares', () => {
  const a = newSigner('mw-a')
  const b = newSigner('mw-b')
  const closers: Array<() => Promise<void>> = []
  after(async () => { for (const close of closers) await close() })

  it('rekey/express requireAuth({ jwksUrl }) verifies, and picks up a key published later', async () => {
    const host = await jwksHost([a.publicJwk])
    closers.push(() => host.close())
    const app = express()
    app.get('/me', requireAuth({ jwksUrl: host.url, cooldown: 0, audience: 'api' }), (req, res) => { res.json({ sub: req.auth?.sub, kid: req.authKey?.kid }) })
    const server = app.listen(0, '127.0.0.1')
    await new Promise((resolve) => server.once('listening', resolve))
    closers.push(() => new Promise((resolve) => server.close(() => resolve())))
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
    const get = (token: string): Promise<Response> => fetch(`${base}/me`, { headers: { authorization: `Bearer ${token}` } })
    const ok = await get(a.keyring.sign({ sub: 'u1' }, { audience: 'api' }))
    assert.equal(ok.status, 200)
    assert.deepEqual(await ok.json(), { sub: 'u1', kid: 'mw-a' })
    const wrongAud = await get(a.keyring.sign({ sub: 'u1' }, { audience: 'x' }))
    assert.equal(wrongAud.status, 401)
    assert.equal(wrongAud.headers.get('www-authenticate'), 'Bearer error="invalid_token"')
    host.keys = [a.publicJwk, b.publicJwk]
    const later = await get(b.keyring.sign({ sub: 'u2' }, { audience: 'api' }))
    assert.equal(later.status, 200, 'the unknown kid waited for the refetch')
    assert.equal(host.hits, 2)
    assert.throws(() => requireAuth({ jwksUrl: 'nope' }), TypeError)
    assert.throws(() => requireAuth({ jwksUrl: host.url, keyring: a.keyring }), TypeError)
  })

  it('requireAuth({ jwksUrl, usage }) reports its verifications per kid to the store, under its name', async (t) => {
    const host = await jwksHost([a.publicJwk])
    closers.push(() => host.close())
    const dir = mkdtempSync(join(os.tmpdir(), 'rekey-mw-usage-'))
    t.after(() => rmSync(dir, { recursive: true, force: true }))
    const db = join(dir, 'usage.db')
    const app = express()
    app.get('/me', requireAuth({ jwksUrl: host.url, usage: { store: db, name: 'mw-app', flushInterval: 1 } }), (req, res) => { res.json({ kid: req.authKey?.kid }) })
    const server = app.listen(0, '127.0.0.1')
    await new Promise((resolve) => server.once('listening', resolve))
    closers.push(() => new Promise((resolve) => server.close(() => resolve())))
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
    const token = a.keyring.sign({ sub: 'u1' })
    for (let i = 0; i < 3; i++) assert.equal((await fetch(`${base}/me`, { headers: { authorization: `Bearer ${token}` } })).status, 200)
    const reporter = `mw-app/${os.hostname()}/${process.pid}`
    await until(async () => {
      if (!existsSync(db)) return false
      const store = await openStore(db)
      try {
        return (await store.usageSince(Date.now() - 120_000)).some((r) => r.kid === 'mw-a' && r.instanceId === reporter && r.result === 'ok' && r.count === 3)
      } finally {
        await store.close()
      }
    }, 10_000, 'the middleware keyring to flush its counts', 100)
  })

  it('the rekey/fastify plugin takes jwksUrl; an unreachable JWKS answers 503, not 401', async () => {
    const host = await jwksHost([a.publicJwk])
    closers.push(() => host.close())
    const app = Fastify()
    await app.register(rekeyAuth, { jwksUrl: host.url, global: true })
    app.get('/me', async (request) => ({ sub: request.auth?.sub, kid: request.authKey?.kid }))
    closers.push(() => app.close())
    const ok = await app.inject({ url: '/me', headers: { authorization: `Bearer ${a.keyring.sign({ sub: 'f1' })}` } })
    assert.equal(ok.statusCode, 200)
    assert.deepEqual(ok.json(), { sub: 'f1', kid: 'mw-a' })
    const bad = await app.inject({ url: '/me', headers: { authorization: `Bearer ${b.keyring.sign({ sub: 'f1' })}` } })
    assert.equal(bad.statusCode, 401)
    assert.equal(bad.json().error, 'ERR_KEY_UNKNOWN')

    const downHost = await jwksHost([a.publicJwk])
    closers.push(() => downHost.close())
    downHost.down = true
    const app2 = Fastify()
    await app2.register(rekeyAuth, { jwksUrl: downHost.url, global: true })
    app2.get('/me', async () => ({ ok: true }))
    closers.push(() => app2.close())
    const unavailable = await app2.inject({ url: '/me', headers: { authorization: `Bearer ${a.keyring.sign({ sub: 'f1' })}` } })
    assert.equal(unavailable.statusCode, 503)
    downHost.down = false
    const recovered = await app2.inject({ url: '/me', headers: { authorization: `Bearer ${a.keyring.sign({ sub: 'f1' })}` } })
    assert.equal(recovered.statusCode, 200, 'a later request fetches again')
  })
})
