/**
 * Remote keyring benchmark: verifying EdDSA tokens against a JWKS served over loopback HTTP,
 * after the first fetch. rekey's `Keyring.fromJwks` against jose's `createRemoteJWKSet` +
 * `jwtVerify`, with a local rekey keyring as the reference. One process, interleaved rounds.
 *
 *   npm run bench:remote
 *   ROUNDS=9 MS=400 npm run bench:remote
 */
import { generateKeyPairSync } from 'node:crypto'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import os from 'node:os'
import * as jose from 'jose'
import { Keyring } from '../src/index.ts'

const ROUNDS = Number(process.env.ROUNDS ?? 7)
const MS = Number(process.env.MS ?? 300)

const { privateKey } = generateKeyPairSync('ed25519')
const jwk = { ...privateKey.export({ format: 'jwk' }), kid: 'bench-ed', alg: 'EdDSA' }
const { d: _d, ...publicJwk } = jwk
const signer = Keyring.fromKeys([{ jwk, state: 'current' }])
const server = createServer((_req, res) => {
  res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'public, max-age=300' }).end(JSON.stringify({ keys: [{ ...publicJwk, use: 'sig' }] }))
})
await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/.well-known/jwks.json`

const options = { audience: 'api', issuer: 'https://auth.example.com' }
const token = signer.sign({ sub: 'user-1234', role: 'user' }, { ...options, expiresIn: '1h' })
const remote = await Keyring.fromJwks(url, options)
const remoteVerify = remote.verifier()
const localVerify = signer.verifier(options)
const joseSet = jose.createRemoteJWKSet(new URL(url))

type Case = { name: string, run: (t: string) => unknown, async?: boolean }
const cases: Case[] = [
  { name: 'rekey Keyring.fromJwks verifier', run: (t) => remoteVerify(t) },
  { name: 'rekey local keyring (reference)', run: (t) => localVerify(t) },
  { name: 'jose createRemoteJWKSet + jwtVerify (async)', run: (t) => jose.jwtVerify(t, joseSet, options), async: true },
]
for (const c of cases) await c.run(token) // first fetch, warm-up

async function measure(c: Case): Promise<number> {
  let n = 0
  const start = performance.now()
  const end = start + MS
  while (performance.now() < end) {
    if (c.async) for (let i = 0; i < 100; i++) await c.run(token)
    else for (let i = 0; i < 100; i++) c.run(token)
    n += 100
  }
  return n / ((performance.now() - start) / 1000)
}

const results = new Map<string, number[]>(cases.map((c) => [c.name, []]))
for (let r = 0; r < ROUNDS; r++) for (const c of cases) results.get(c.name)!.push(await measure(c))
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number
const med = new Map([...results].map(([k, v]) => [k, median(v)]))
const rekeyOps = med.get(cases[0]!.name)!
console.log(`remote keyring benchmark (EdDSA, JWKS over loopback HTTP, after the first fetch): node ${process.version}, ${os.cpus()[0]?.model ?? 'cpu'} x${os.cpus().length}, ${ROUNDS} rounds x ${MS} ms, median`)
console.log('')
console.log('| implementation | ops/s | fromJwks is |')
console.log('| --- | ---: | ---: |')
for (const [name, ops] of med) console.log(`| ${name} | ${Math.round(ops).toLocaleString('en-US')} | ${name === cases[0]!.name ? '1.00x' : `${(rekeyOps / ops).toFixed(2)}x`} |`)
console.log('')
console.log(`JWKS requests: rekey ${remote.remote?.fetches} (fetches), jose: one per cache period`)
await remote.close()
server.close()
