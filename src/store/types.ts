/**
 * The records the store holds, as callers see them. Every time is epoch milliseconds
 * (an integer); every optional column is `null`, never `undefined`.
 */
import type { KeyState } from '../core/states.ts'

/** What a user may do: `admin` reaches the admin API. */
export type Role = 'user' | 'admin'

/** A user. The email is stored lowercased; the password hash is made by the service. */
export interface UserRecord {
  readonly id: string
  readonly email: string
  /** The argon2id PHC string. */
  readonly passwordHash: string
  readonly role: Role
  /** Bumped by logout-all; access tokens carrying an older `ver` are refused. */
  readonly tokenVersion: number
  readonly createdAt: number
  /** Set by `rekey users force-reset`: the next login can only set a new password. */
  readonly mustChangePassword: boolean
}

/** What guards a user's sign-in (see {@link UserRecord}). */
export type UserSecurity = Pick<UserRecord, 'passwordHash' | 'role' | 'tokenVersion' | 'mustChangePassword'>

/** A user to create. `role` defaults to `user`; the email is lowercased by the store. */
export interface NewUser {
  readonly id: string
  readonly email: string
  readonly passwordHash: string
  readonly role?: Role
  readonly createdAt: number
}

/** A session: the family every refresh token of one login belongs to. */
export interface SessionFamily {
  readonly id: string
  readonly userId: string
  readonly createdAt: number
  readonly expiresAt: number
  readonly revokedAt: number | null
  /** Why it ended: `logout`, `logout-all`, `reuse`, `emergency`... chosen by the caller. */
  readonly revokeReason: string | null
}

/** One refresh token of a family, known only by the SHA-256 hex of the token. */
export interface RefreshTokenRecord {
  readonly tokenHash: string
  readonly familyId: string
  /** The key that signed it. */
  readonly kid: string
  readonly issuedAt: number
  readonly expiresAt: number
  /** When it was exchanged for its successor; `null` while it is the family's live token. */
  readonly usedAt: number | null
  readonly successorHash: string | null
  /** The token it replaced; `null` for the first token of a family. */
  readonly parentHash: string | null
  /** Opaque (sealed) copy of the successor pair, returned to a second use inside the overlap window. */
  readonly successorBlob: string | null
}

/** A refresh token to insert. */
export interface NewRefreshToken {
  readonly tokenHash: string
  readonly kid: string
  readonly issuedAt: number
  readonly expiresAt: number
}

/** A new session: the family and its first token. */
export interface NewSession {
  readonly familyId: string
  readonly userId: string
  readonly createdAt: number
  readonly expiresAt: number
  /** The first refresh token; absent for a session without one (a dashboard sign-in). */
  readonly token?: NewRefreshToken
}

/** The state of a managed key, as in the contract (one home: `core/states.ts`). */
export type { KeyState }

/** A managed key. The material is sealed by the service; the store never sees it in clear. */
export interface KeyRecord {
  readonly kid: string
  /** `access`, `refresh`, or the name of another managed secret. */
  readonly purpose: string
  readonly alg: string
  readonly state: KeyState
  readonly sealedMaterial: string
  readonly createdAt: number
  readonly activatedAt: number | null
  readonly demotedAt: number | null
  /** When a `previous` key may be retired (demotion + token lifetime + skew). */
  readonly retireAfter: number | null
  readonly retiredAt: number | null
  readonly revokedAt: number | null
  readonly revokeReason: string | null
}

/** A key to insert; the optional times default to `null`. */
export interface NewKey {
  readonly kid: string
  readonly purpose: string
  readonly alg: string
  readonly state: KeyState
  readonly sealedMaterial: string
  readonly createdAt: number
  readonly activatedAt?: number | null
  readonly demotedAt?: number | null
  readonly retireAfter?: number | null
  readonly retiredAt?: number | null
  readonly revokedAt?: number | null
  readonly revokeReason?: string | null
}

/**
 * A change to one key. Only the fields present are written. With `expectState`, the change
 * applies only if the key is in that state; otherwise the whole mutation fails with `ERR_CONFLICT`.
 */
export interface KeyUpdate {
  readonly kid: string
  readonly expectState?: KeyState
  readonly state?: KeyState
  /** For master-key rotation: the same key re-sealed under the new master key. */
  readonly sealedMaterial?: string
  readonly activatedAt?: number | null
  readonly demotedAt?: number | null
  readonly retireAfter?: number | null
  readonly retiredAt?: number | null
  readonly revokedAt?: number | null
  readonly revokeReason?: string | null
}

/** Every key together with the key-set version they belong to, read consistently. */
export interface Keyset {
  readonly version: number
  readonly keys: readonly KeyRecord[]
}

/** An audit event as the caller writes it (`Date | Secret | Operator | Method | Notes | Request`). */
export interface AuditEventInput {
  readonly at: number
  readonly secret: string
  readonly operator: string
  readonly method: string
  readonly notes: string
  readonly requestId: string | null
}

/** What the hash of a row covers: the event and its sequence number. */
export interface AuditHashInput extends AuditEventInput {
  readonly seq: number
}

/** A stored audit row: sequence numbers start at 1 and have no gaps. */
export interface AuditRecord extends AuditHashInput {
  /** The previous row's hash; `null` for the first row. */
  readonly prevHash: string | null
  readonly hash: string
}

/**
 * Computes a row's hash from the previous row's hash (`null` for the first row) and the row.
 * Called synchronously inside the appending transaction; throwing aborts the transaction.
 */
export type ComputeAuditHash = (prevHash: string | null, row: AuditHashInput) => string

/** An audit row to append in the same transaction as a change. */
export interface AuditWrite {
  readonly event: AuditEventInput
  readonly computeHash: ComputeAuditHash
}

/** Which reminders were sent for a secret's current due date. */
export interface ReminderState {
  readonly dueAt: number | null
  readonly stages: readonly string[]
}

/** A secret in the inventory. */
export interface SecretRecord {
  readonly name: string
  /** `jwt`, `master-key`, `token`, `database`, `manual`... chosen by the service. */
  readonly kind: string
  readonly cadenceDays: number
  readonly lastRotatedAt: number | null
  readonly lastMethod: string | null
  readonly notes: string | null
  readonly reminders: ReminderState
}

/** A secret to add or update. Missing `notes` keeps the stored notes. */
export interface SecretInput {
  readonly name: string
  readonly kind: string
  readonly cadenceDays: number
  readonly notes?: string | null
}

/** A rotation to record for a secret. Missing `notes` keeps the stored notes. */
export interface RotationRecord {
  readonly name: string
  readonly at: number
  readonly method: string
  readonly notes?: string | null
}

/** Verifications to add to a per-minute counter. */
export interface UsageIncrement {
  readonly kid: string
  readonly instanceId: string
  /** Any time inside the minute; the store floors it to the minute. */
  readonly bucketStart: number
  /** `ok` or an error code. */
  readonly result: string
  readonly count: number
}

/** Verifications summed over a time range. */
export interface UsageTotal {
  readonly kid: string
  readonly instanceId: string
  readonly result: string
  readonly count: number
}

/** One per-minute counter as stored: for evidence over time (a share that stayed low, a last report). */
export interface UsageBucket {
  readonly kid: string
  readonly instanceId: string
  /** The minute's start, epoch ms. */
  readonly bucketStart: number
  readonly result: string
  readonly count: number
}

/** What a running instance reports about itself. */
export interface InstanceHeartbeat {
  readonly instanceId: string
  readonly hostname: string
  readonly pid: number
  /** The key-set version it has loaded. */
  readonly keysetVersion: number
  readonly startedAt: number
  readonly lastSeen: number
}
