/**
 * The peer of bench/peers.ts: a hand-written Express + jsonwebtoken + pg auth app as many
 * teams write it. Refresh verifies the token, deletes its SHA-256 from a table and inserts the
 * new one (no reuse detection, no transaction); /api/auth/me verifies the access token.
 * PEER_DATABASE_URL (with its search_path), JWT_SECRET, JWT_REFRESH_SECRET, PORT.
 */
import { createHash, randomUUID } from 'node:crypto'
import express from 'express'
import jwt from 'jsonwebtoken'
import pg from 'pg'

const access = process.env.JWT_SECRET as string
const refresh = process.env.JWT_REFRESH_SECRET as string
const pool = new pg.Pool({ connectionString: process.env.PEER_DATABASE_URL, max: 10 })
await pool.query('CREATE TABLE IF NOT EXISTS peer_refresh_tokens (token_hash TEXT PRIMARY KEY, user_id TEXT NOT NULL, expires_at BIGINT NOT NULL)')
const hash = (token: string): string => createHash('sha256').update(token).digest('hex')

async function issue(userId: string): Promise<{ accessToken: string, refreshToken: string }> {
  const accessToken = jwt.sign({ sub: userId, token_use: 'access' }, access, { expiresIn: 900, jwtid: randomUUID() })
  const refreshToken = jwt.sign({ sub: userId, token_use: 'refresh' }, refresh, { expiresIn: 604_800, jwtid: randomUUID() })
  await pool.query('INSERT INTO peer_refresh_tokens (token_hash, user_id, expires_at) VALUES ($1, $2, $3)', [hash(refreshToken), userId, Date.now() + 604_800_000])
  return { accessToken, refreshToken }
}

const app = express()
app.use(express.json())
// Bench only: a session for any email, no password (the comparison is about refresh and me).
app.post('/api/auth/login', async (req, res) => {
  res.json(await issue(String(req.body?.email)))
})
app.post('/api/auth/refresh', async (req, res) => {
  try {
    const token = String(req.body?.refreshToken)
    const claims = jwt.verify(token, refresh) as { sub: string }
    const { rowCount } = await pool.query('DELETE FROM peer_refresh_tokens WHERE token_hash = $1', [hash(token)])
    if (rowCount !== 1) {
      res.status(401).json({ error: 'invalid_token' })
      return
    }
    res.json(await issue(claims.sub))
  } catch {
    res.status(401).json({ error: 'invalid_token' })
  }
})
app.get('/api/auth/me', (req, res) => {
  try {
    const claims = jwt.verify((req.headers.authorization ?? '').slice(7), access) as { sub: string }
    res.json({ id: claims.sub, email: 'bench@example.com', role: 'user' })
  } catch {
    res.status(401).json({ error: 'invalid_token' })
  }
})
const server = app.listen(Number(process.env.PORT ?? 0), '127.0.0.1', () => process.stdout.write('listening\n'))
process.on('SIGTERM', () => { server.close(); void pool.end().then(() => process.exit(0)) })
