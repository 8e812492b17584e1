/**
 * Tokens that cannot be swapped (issue 12, item 5): the middleware checks `token_use` (on by
 * default for keyrings from purpose-specific variables such as JWT_ACCESS_SECRET), and
 * `rekey serve` refuses to start when the access and refresh secrets are equal.
 */
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import express from 'express'
import Fastify from 'fastify'
import { loadConfig } from '../../src/config/load.ts'
import { generateSecret, isRekeyError, Keyring } from '../../src/index.ts'
import { requireAuth } from '../../src/middleware/express.ts'
import { rekeyAuth } from '../../src/middleware/fastify.ts'
import { runBin } from '../cli/helpers.ts'

const ACCESS = generateSecret()
const REFRESH = generateSecret()

async function expressStatus(options: Parameters<typeof requireAuth>[0], token: string): Promise<{ status: number, body: { error?: string } }> {
  const app = express()
  app.get('/me', requireAuth(options), (req, res) => { res.json({ sub: req.auth?.sub }) })
  const server = app.listen(0, '127.0.0.1')
  await new Promise((resolve) => server.once('listening', resolve))
  try {
    const res = await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/me`, { headers: { authorization: `Bearer ${token}` } })
    return { status: res.status, body: await res.json() as { error?: string } }
  } finally {
    server.close()
  }
}

async function fastifyStatus(options: Record<string, unknown>, token: string): Promise<{ status: number, body: { error?: string } }> {
  const app = Fastify()
  await app.register(rekeyAuth, options as never)
  app.get('/me', { onRequest: app.requireAuth }, async (request) => ({ sub: request.auth?.sub }))
  const res = await app.inject({ method: 'GET', url: '/me', headers: { authorization: `Bearer ${token}` } })
  await app.close()
  return { status: res.statusCode, body: res.json() as { error?: string } }
}

describe('tokenUse in rekey/express and rekey/fastify', () => {
  // One secret shared by mistake: the refresh token verifies with the access keyring.
  const shared = Keyring.fromEnv({ JWT_ACCESS_SECRET: ACCESS })
  const refreshToken = shared.sign({ sub: 'u1', token_use: 'refresh' }, { expiresIn: '7d' })
  const accessToken = shared.sign({ sub: 'u1', token_use: 'access' })
  const plain = shared.sign({ sub: 'u1' })

  it('a keyring from JWT_ACCESS_SECRET checks token_use "access" by default', async () => {
    assert.equal(shared.purpose, 'access')
    for (const check of [expressStatus, fastifyStatus]) {
      assert.equal((await check({ keyring: shared }, accessToken)).status, 200)
      const swapped = await check({ keyring: shared }, refreshToken)
      assert.equal(swapped.status, 401, 'a refresh token is refused as an access token')
      assert.equal(swapped.body.error, 'ERR_TOKEN_CLAIM')
      assert.equal((await check({ keyring: shared }, plain)).status, 401, 'no token_use at all is refused too')
      assert.equal((await check({ keyring: shared, tokenUse: false }, plain)).status, 200, 'tokenUse: false turns the check off')
    }
  })

  it('generic keyrings (JWT_SECRET, keys) check only when asked', async () => {
    const generic = Keyring.fromEnv({ JWT_SECRET: ACCESS })
    assert.equal(generic.purpose, undefined)
    for (const check of [expressStatus, fastifyStatus]) {
      assert.equal((await check({ keyring: generic }, refreshToken)).status, 200, 'no default without a purpose-specific variable')
      assert.equal((await check({ keyring: generic, tokenUse: 'access' }, refreshToken)).status, 401)
      assert.equal((await check({ keyring: generic, tokenUse: 'access' }, accessToken)).status, 200)
    }
  })

  it('a bad tokenUse is a TypeError at setup', () => {
    assert.throws(() => requireAuth({ keyring: shared, tokenUse: '' }), TypeError)
    assert.throws(() => requireAuth({ keyring: shared, tokenUse: 42 as unknown as string }), /tokenUse must be/)
  })
})

describe('equal access and refresh secrets', () => {
  it('loadConfig refuses them with ERR_CONFIG, naming variables, never values', () => {
    for (const env of [
      { JWT_ACCESS_SECRET: ACCESS, JWT_REFRESH_SECRET: ACCESS },
      { JWT_SECRET: ACCESS, JWT_REFRESH_SECRET: ACCESS },
      { JWT_ACCESS_SECRET: ACCESS, JWT_REFRESH_SECRET: REFRESH, JWT_REFRESH_SECRET_PREV: ACCESS },
    ]) {
      assert.throws(() => loadConfig({ env, cwd: tmpdir() }), (err: unknown) => {
        assert.ok(isRekeyError(err))
        assert.equal(err.code, 'ERR_CONFIG')
        assert.match(err.message, /refresh secret .* equals an access secret/)
        assert.ok(!err.message.includes(ACCESS))
        return true
      })
    }
    assert.equal(loadConfig({ env: { JWT_ACCESS_SECRET: ACCESS, JWT_REFRESH_SECRET: REFRESH }, cwd: tmpdir() }).keySource, 'env')
  })

  it('rekey serve exits 2 with rekey: ERR_CONFIG', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'rekey-same-'))
    try {
      const run = await runBin(['serve', '--port', '0'], { cwd: dir, env: { JWT_ACCESS_SECRET: ACCESS, JWT_REFRESH_SECRET: ACCESS, REKEY_STORE: join(dir, 'rekey.db') } })
      assert.equal(run.code, 2)
      assert.match(run.stderr, /^rekey: ERR_CONFIG: [\s\S]*refresh secret \(JWT_REFRESH_SECRET/)
      assert.ok(!run.stderr.includes(ACCESS) && !run.stdout.includes(ACCESS))
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
