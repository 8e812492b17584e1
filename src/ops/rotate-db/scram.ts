/**
 * SCRAM-SHA-256 password verifiers, computed here so that `ALTER ROLE ... PASSWORD` sends the
 * verifier, never the password: statement logs (`log_statement = 'ddl'`) and
 * `pg_stat_statements` then hold nothing that logs in. Format of PostgreSQL (RFC 5802, 7677):
 * `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`, base64.
 */
import { createHash, createHmac, pbkdf2Sync, randomBytes } from 'node:crypto'

/** PostgreSQL's default `scram_iterations`. */
const ITERATIONS = 4096

/**
 * The verifier of `password`. The password must be ASCII without control characters (rekey's
 * generated passwords are base64url), so SASLprep leaves it unchanged.
 */
export function scramVerifier(password: string, salt: Buffer = randomBytes(16), iterations = ITERATIONS): string {
  if (!/^[\x21-\x7e]+$/.test(password)) throw new TypeError('the password must be printable ASCII')
  const salted = pbkdf2Sync(password, salt, iterations, 32, 'sha256')
  const clientKey = createHmac('sha256', salted).update('Client Key').digest()
  const storedKey = createHash('sha256').update(clientKey).digest()
  const serverKey = createHmac('sha256', salted).update('Server Key').digest()
  return `SCRAM-SHA-256$${iterations}:${salt.toString('base64')}$${storedKey.toString('base64')}:${serverKey.toString('base64')}`
}
