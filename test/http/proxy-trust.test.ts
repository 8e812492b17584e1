/**
 * Proxy trust that cannot be spoofed (issue 12, item 4). Behind one proxy that appends the
 * address it saw to X-Forwarded-For, a hop count (REKEY_TRUST_PROXY=1) takes that address and
 * ignores whatever the client wrote before it; REKEY_TRUST_PROXY=true takes the client's own
 * claim, which is why it logs a warning at start.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { testServer, type TestServer } from './support.ts'

const PROXY = '10.0.0.2'
const REAL_CLIENT = '198.51.100.9'

/** 35 failed logins, each with a different spoofed address the proxy passes on before the real one. */
async function spoofedLogins(server: TestServer): Promise<number[]> {
  const codes: number[] = []
  for (let i = 0; i < 35; i++) {
    const res = await server.app.inject({
      method: 'POST', url: '/api/auth/login', remoteAddress: PROXY,
      headers: { 'x-forwarded-for': `203.0.113.${i + 1}, ${REAL_CLIENT}` },
      payload: { email: `nobody${i}@example.test`, password: 'wrong password' },
    })
    codes.push(res.statusCode)
  }
  return codes
}

describe('REKEY_TRUST_PROXY', () => {
  test('a hop count ignores spoofed X-Forwarded-For: 35 logins from one client hit the per-address limit', async () => {
    const server = await testServer({ env: { REKEY_TRUST_PROXY: '1' }, overrides: { 'rateLimit.loginPerIp': 30 } })
    try {
      const codes = await spoofedLogins(server)
      assert.deepEqual(codes.slice(0, 30), Array(30).fill(401))
      assert.deepEqual(codes.slice(30), Array(5).fill(429), 'the real client address is counted, not the spoofed ones')
      assert.doesNotMatch(server.logs.text, /REKEY_TRUST_PROXY=true/)
    } finally {
      await server.stop()
    }
  })

  test('true trusts the client\'s own claim (the limit never hits) and warns at start', async () => {
    const server = await testServer({ env: { REKEY_TRUST_PROXY: 'true' }, overrides: { 'rateLimit.loginPerIp': 30 } })
    try {
      const warning = server.logs.parsed().find((line) => typeof line.msg === 'string' && line.msg.includes('REKEY_TRUST_PROXY=true'))
      assert.equal(warning?.level, 40, 'a warning at start')
      assert.match(String(warning?.msg), /hop/)
      const codes = await spoofedLogins(server)
      assert.ok(codes.every((c) => c === 401), 'each spoofed address gets a fresh budget: why true is unsafe')
    } finally {
      await server.stop()
    }
  })
})
