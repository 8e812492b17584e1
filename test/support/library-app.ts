/**
 * A service that verifies rekey tokens with the library and reports usage, as a team would
 * run it: `Keyring.fromJwks(JWKS_URL)` when JWKS_URL is set, else `Keyring.fromEnv(process.env)`
 * (start it with `node --env-file=.env`), with `usage: { store: USAGE_STORE, name: APP_NAME }`.
 * `GET /check` with a Bearer token answers 200 `{ kid }` or 401 `{ error }`. Prints
 * `listening PORT`; on SIGTERM it closes the keyring (writing the last counts) and exits.
 */
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Keyring } from '../../src/index.ts'

const usage = { store: process.env.USAGE_STORE as string, name: process.env.APP_NAME as string, flushInterval: 1 }
const keyring = process.env.JWKS_URL !== undefined
  ? await Keyring.fromJwks(process.env.JWKS_URL, { cooldown: 0, usage })
  : Keyring.fromEnv(process.env, { usage })
const server = createServer((req, res) => {
  const token = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1] ?? ''
  const answer = (status: number, body: unknown): void => { res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body)) }
  try {
    answer(200, { kid: keyring.verify(token).kid })
  } catch (err) {
    if ((err as { code?: string }).code !== 'ERR_KEY_UNKNOWN') return answer(401, { error: (err as { code?: string }).code })
    // A key published since the last fetch: wait for the refetch, once.
    void keyring.refreshForUnknownKid().then(() => {
      try {
        answer(200, { kid: keyring.verify(token).kid })
      } catch (again) {
        answer(401, { error: (again as { code?: string }).code })
      }
    })
  }
})
server.listen(0, '127.0.0.1', () => { process.stdout.write(`listening ${(server.address() as AddressInfo).port}\n`) })
process.on('SIGTERM', () => {
  server.close()
  void keyring.close().then(() => process.exit(0))
})
