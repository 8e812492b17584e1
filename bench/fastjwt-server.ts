/**
 * The baseline of bench/http.ts: a bare Fastify route that verifies the bearer token with
 * fast-jwt and answers the same body as /api/auth/me. Prints its URL on stdout.
 */
import Fastify from 'fastify'
import { createVerifier } from 'fast-jwt'

const secret = process.env.JWT_SECRET
if (secret === undefined) throw new Error('JWT_SECRET is required')
const verify = createVerifier({ key: secret, algorithms: ['HS256'] })
const app = Fastify({ logger: false })
app.get('/api/auth/me', async (request, reply) => {
  const header = request.headers.authorization ?? ''
  try {
    const claims = verify(header.slice(7)) as { sub: string }
    return { id: claims.sub, email: 'bench@example.com', role: 'user' }
  } catch {
    return reply.code(401).send({ error: 'invalid_token' })
  }
})
const url = await app.listen({ port: Number(process.env.PORT ?? 0), host: '127.0.0.1' })
process.stdout.write(`listening ${url}\n`)
process.on('SIGTERM', () => { void app.close().then(() => process.exit(0)) })
