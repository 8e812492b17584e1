/** Values the store tests share: ids, token hashes, an audit hash function, a frozen clock. */
import { createHash, randomUUID } from 'node:crypto'
import type { AuditHashInput, NewKey, NewSession } from '../../../src/store/types.ts'
import type { RotateResult, Store } from '../../../src/store/store.ts'

/** The frozen "now" of the suite: 2025-01-01T00:00:00Z. */
export const T0 = Date.UTC(2025, 0, 1)
export const MINUTE = 60_000
export const DAY = 86_400_000

/** SHA-256 hex, as the service hashes refresh tokens. */
export function sha256(value: string): string {
  return createHash('sha256').update(value).digest('hex')
}

/** A test stand-in for the service's HMAC chain: hash of the previous hash and the row. */
export function chainHash(prevHash: string | null, row: AuditHashInput): string {
  return sha256(JSON.stringify([prevHash, row.seq, row.at, row.secret, row.operator, row.method, row.notes, row.requestId]))
}

export function auditEvent(notes: string, at = T0): { at: number, secret: string, operator: string, method: string, notes: string, requestId: string | null } {
  return { at, secret: 'access', operator: 'tester', method: 'rotate', notes, requestId: null }
}

/** Creates a user and returns its id. */
export async function newUser(store: Store, email = `${randomUUID()}@example.test`): Promise<string> {
  const id = randomUUID()
  await store.createUser({ id, email, passwordHash: '$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA', createdAt: T0 })
  return id
}

/** A session of `userId` whose first token is `token` (hashed), signed by `kid`, living one day. */
export function session(userId: string, token: string, kid = 'kid-r1', now = T0): NewSession {
  return {
    familyId: randomUUID(),
    userId,
    createdAt: now,
    expiresAt: now + DAY,
    token: { tokenHash: sha256(token), kid, issuedAt: now, expiresAt: now + DAY },
  }
}

/** A key row with sealed material that is obviously not a secret. */
export function key(kid: string, state: NewKey['state'], purpose = 'access', createdAt = T0): NewKey {
  return { kid, purpose, alg: 'HS256', state, sealedMaterial: `sealed:${kid}`, createdAt }
}

/** Resolves when `predicate()` holds, polling every 10 ms; rejects after `timeoutMs`. */
export async function waitFor(predicate: () => boolean, timeoutMs: number, what: string): Promise<number> {
  const start = Date.now()
  while (!predicate()) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
  return Date.now() - start
}

/** Refreshes the token `old` into `next` at `now` (overlap window 10 s); `familyId` is the session the token names. */
export function rotate(store: Store, old: string, next: string, now: number, familyId?: string): Promise<RotateResult> {
  return store.rotateToken({
    oldHash: sha256(old),
    next: { tokenHash: sha256(next), kid: 'kid-r1', issuedAt: now, expiresAt: now + DAY },
    successorBlob: `blob-of-${next}`,
    now,
    overlapMs: 10_000,
    ...(familyId === undefined ? {} : { familyId }),
  })
}
