/**
 * A resource server as other teams write them: jose's `createRemoteJWKSet` with its defaults
 * (10-minute cache, 30-second cooldown) and `jwtVerify`. `GET /check` with a Bearer token
 * answers 200 `{ kid }` or 401 `{ error }`. Prints `listening PORT` once up.
 */
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { createRemoteJWKSet, jwtVerify } from 'jose'

const jwks = createRemoteJWKSet(new URL(process.env.JWKS_URL as string))
const server = createServer((req, res) => {
  const token = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1] ?? ''
  jwtVerify(token, jwks).then(({ protectedHeader }) => {
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ kid: protectedHeader.kid }))
  }, (err: { code?: string }) => {
    res.writeHead(401, { 'content-type': 'application/json' }).end(JSON.stringify({ error: err.code ?? 'error' }))
  })
})
server.listen(0, '127.0.0.1', () => { process.stdout.write(`listening ${(server.address() as AddressInfo).port}\n`) })
process.on('SIGTERM', () => server.close(() => process.exit(0)))
