import assert from 'node:assert/strict'
import { readFileSync, rmSync, writeFileSync } from 'node:fs'
import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import path from 'node:path'
import { describe, it } from 'node:test'
import jsonwebtoken from 'jsonwebtoken'

const ROOT = path.resolve(import.meta.dirname, '..')

describe('README', () => {
  it('shows the two set-up commands', () => {
    const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8')
    assert.match(readme, /npm install && npm start/)
    assert.match(readme, /npm test/)
  })

  it('the Express adoption example works as written, through the package exports', async (t) => {
    const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8')
    const block = [...readme.matchAll(/```js\n([\s\S]*?)```/g)].map((m) => m[1] as string).find((b) => b.includes("from 'rekey/express'"))
    assert.ok(block, 'the README has the example')
    assert.match(block, /app\.listen\(3000\)/)
    // The one change: listen on a free loopback port instead of 3000.
    const code = `${block.replace('app.listen(3000)', "const server = app.listen(0, '127.0.0.1')")}\nexport { server }\n`
    // Inside the package, so `import 'rekey'` resolves through package.json exports, as for a user.
    const file = path.join(ROOT, `.readme-example-${process.pid}.mjs`)
    writeFileSync(file, code)
    t.after(() => rmSync(file, { force: true }))
    const secret = 'readme-example-secret-0123456789abcdef0123'
    const previous = 'readme-example-previous-0123456789abcdef01'
    process.env.JWT_SECRET = secret
    process.env.JWT_SECRET_PREV = previous
    t.after(() => { delete process.env.JWT_SECRET; delete process.env.JWT_SECRET_PREV })
    const { server } = await import(file) as { server: Server }
    t.after(() => { server.close() })
    await new Promise<void>((resolve) => { if (server.listening) resolve(); else server.once('listening', () => resolve()) })
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`

    const login = await fetch(`${base}/api/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })
    assert.equal(login.status, 200)
    const { token } = await login.json() as { token: string }
    const me = await fetch(`${base}/api/me`, { headers: { authorization: `Bearer ${token}` } })
    assert.equal(me.status, 200)
    assert.equal((await me.json() as { sub: string }).sub, 'user-1')

    // Tokens jsonwebtoken signed yesterday, with the secret of today or of before the rotation.
    for (const key of [secret, previous]) {
      const legacy = jsonwebtoken.sign({ sub: 'legacy' }, key, { expiresIn: '15m' })
      const res = await fetch(`${base}/api/me`, { headers: { authorization: `Bearer ${legacy}` } })
      assert.equal(res.status, 200)
    }
    const forged = jsonwebtoken.sign({ sub: 'x' }, 'another-secret-0123456789abcdef0123456789')
    const refused = await fetch(`${base}/api/me`, { headers: { authorization: `Bearer ${forged}` } })
    assert.equal(refused.status, 401)
    assert.equal(refused.headers.get('www-authenticate'), 'Bearer error="invalid_token"')
  })
})
