/**
 * A JWKS host for the remote keyring tests: real HTTP on 127.0.0.1, with the key set, the
 * Cache-Control header and an outage switch under the test's control, and a request count.
 */
import { generateKeyPairSync, type JsonWebKey } from 'node:crypto'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Keyring } from '../../src/index.ts'

/** An EdDSA signer and its public JWK. */
export interface Signer {
  kid: string
  keyring: Keyring
  publicJwk: JsonWebKey
}

export function newSigner(kid: string): Signer {
  const { privateKey } = generateKeyPairSync('ed25519')
  const jwk = { ...privateKey.export({ format: 'jwk' }), kid, alg: 'EdDSA' }
  const keyring = Keyring.fromKeys([{ jwk, state: 'current' }])
  const { d: _d, ...publicJwk } = jwk
  return { kid, keyring, publicJwk: { ...publicJwk, use: 'sig' } }
}

export interface JwksHost {
  url: string
  /** Requests served so far. */
  hits: number
  keys: JsonWebKey[]
  cacheControl: string | null
  /** Answer 503 while true. */
  down: boolean
  /** Delay before each answer, ms. */
  delayMs: number
  close(): Promise<void>
}

export async function jwksHost(keys: JsonWebKey[]): Promise<JwksHost> {
  const host: JwksHost = { url: '', hits: 0, keys, cacheControl: 'public, max-age=300', down: false, delayMs: 0, close: async () => {} }
  const server: Server = createServer((req, res) => {
    host.hits++
    setTimeout(() => {
      if (host.down) {
        res.writeHead(503).end('down')
        return
      }
      const headers: Record<string, string> = { 'content-type': 'application/json' }
      if (host.cacheControl !== null) headers['cache-control'] = host.cacheControl
      res.writeHead(200, headers).end(JSON.stringify({ keys: host.keys }))
    }, host.delayMs)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  host.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/.well-known/jwks.json`
  host.close = () => new Promise((resolve) => { server.closeAllConnections(); server.close(() => resolve()) })
  return host
}
