/**
 * The Store contract: everything rekey keeps between requests and across instances.
 *
 * Two implementations sit behind it (SQLite through `node:sqlite`, PostgreSQL through `pg`),
 * and one contract test suite runs against both. Rules shared by every method:
 * - Times are inputs (`now`, `at`), epoch milliseconds: the store never reads the clock where
 *   a rule depends on time, so tests freeze it by passing values.
 * - Every mutating method is one transaction. Methods taking `opts.audit` append that audit row
 *   in the same transaction when they change something (fail closed: no audit row, no change).
 * - Failures that a caller can act on are `RekeyError`s: `ERR_CONFLICT` (nothing was written)
 *   and `ERR_STORE_UNAVAILABLE` (the database did not answer).
 * - Mutations of keys, revocations, users and settings bump the matching change channel,
 *   delivered to {@link Store.subscribe} on every instance after commit.
 */
import type {
  AuditEventInput, AuditRecord, AuditWrite, ComputeAuditHash, InstanceHeartbeat, KeyRecord,
  KeyUpdate, Keyset, NewKey, NewRefreshToken, NewSession, NewUser, RefreshTokenRecord, Role,
  RotationRecord, SecretInput, SecretRecord, SessionFamily, UsageBucket, UsageIncrement, UsageTotal, UserRecord, UserSecurity,
} from './types.ts'

/** The change channels, one per kind of state instances cache. */
export const CHANGE_CHANNELS = Object.freeze(['keys', 'revocations', 'users', 'settings'] as const)

/** `keys`: key set; `revocations`: sessions ended, token versions bumped; `users`: roles; `settings`. */
export type ChangeChannel = (typeof CHANGE_CHANNELS)[number]

/**
 * Told of a committed change. `userId` names the one user a `revocations` change concerns
 * (PostgreSQL only; SQLite's polling cannot tell): evict that user, not everyone.
 */
export type ChangeListener = (channel: ChangeChannel, userId?: string) => void

/**
 * Where an emergency's session sweep stands: on PostgreSQL the next heap page, the size of the
 * next page range and the page the sweep ends at; on SQLite the last family it went through.
 */
export type SessionCursor =
  | { readonly kind: 'pages', readonly page: number, readonly pages: number, readonly end: number }
  | { readonly kind: 'expiry', readonly expiresAt: number, readonly id: string }

/** What one batch of {@link StoreOperations.endSessionsBatch} did. */
export interface SessionSweepBatch {
  readonly ended: number
  /** Where the next batch starts; `null` once the sweep has gone through every live family. */
  readonly cursor: SessionCursor | null
}

/** What one round of {@link StoreOperations.pruneSessionsBatch} deleted. */
export interface PruneReport {
  readonly families: number
  readonly tokens: number
}

/** Options of mutations that can be audited. */
export interface MutationOptions {
  /**
   * An audit row appended in the same transaction, when the call changes something (not for an
   * unknown id or an already revoked session). If it cannot be appended, nothing changes.
   */
  readonly audit?: AuditWrite
}

/** Input of {@link Store.rotateToken}. */
export interface RotateTokenInput {
  /** SHA-256 hex of the refresh token presented. */
  readonly oldHash: string
  /** Its successor, inserted only when the outcome is `rotated`. */
  readonly next: NewRefreshToken
  /** Sealed copy of the successor pair, returned by later calls on `oldHash` within the overlap window. */
  readonly successorBlob?: string | null
  readonly now: number
  /** How long after its first use a second use still gets the same successor, in ms (e.g. 10000). */
  readonly overlapMs: number
  /** The audit row to append, in the same transaction, when reuse ends the family. */
  readonly reuseAudit?: (session: { familyId: string, userId: string }) => AuditWrite
  /**
   * The family the (verified) token names in its `sid` claim, if any. An unknown hash naming a
   * live family is a token pruned after its use: a reuse, which ends the family.
   */
  readonly familyId?: string
}

/** What {@link Store.rotateToken} did. */
export type RotateResult =
  | { readonly outcome: 'rotated', readonly familyId: string, readonly userId: string }
  | { readonly outcome: 'overlap', readonly familyId: string, readonly userId: string, readonly successorHash: string, readonly successorBlob: string | null }
  | { readonly outcome: 'reuse', readonly familyId: string, readonly userId: string }
  | { readonly outcome: 'invalid', readonly reason: 'unknown' | 'revoked' | 'expired' }

/** Input of {@link Store.transitionKeys}. */
export interface KeyMutation extends MutationOptions {
  /** The key-set version the caller read; the mutation fails with `ERR_CONFLICT` if it moved. */
  readonly expectedVersion: number
  readonly insert?: readonly NewKey[]
  /** Applied demotions first, then inserts, then promotions to `current` (one `current` per purpose). */
  readonly update?: readonly KeyUpdate[]
}

/** Options of {@link Store.listAudit}. */
export interface AuditQuery {
  /** Only rows with `at >= since` (epoch ms). */
  readonly since?: number
  /** Only rows with `seq > afterSeq`, to page through the log. */
  readonly afterSeq?: number
  /** At most this many rows (default: all). */
  readonly limit?: number
}

/** The data operations, also available inside {@link Store.transaction}. */
export interface StoreOperations {
  // Users
  /** Creates a user (email lowercased). `ERR_CONFLICT` if the id or email is taken. */
  createUser(user: NewUser): Promise<UserRecord>
  /** The user with that email, compared case-insensitively; `null` if none. */
  getUserByEmail(email: string): Promise<UserRecord | null>
  getUserById(id: string): Promise<UserRecord | null>
  /** Increments the user's token version (logout-all); the new version, or `null` for an unknown user. Channel `revocations`. */
  bumpTokenVersion(userId: string, opts?: MutationOptions): Promise<number | null>
  /** Sets the role; `false` for an unknown user. Channel `users`. */
  setRole(userId: string, role: Role, opts?: MutationOptions): Promise<boolean>
  /** Replaces the user's password hash (made by the service); `false` for an unknown user. Channel `users`. */
  setPasswordHash(userId: string, passwordHash: string, opts?: MutationOptions): Promise<boolean>
  countUsers(): Promise<number>
  /** Every user, oldest first (a restore compares the replaced store's with the backup's). */
  listUsers(): Promise<UserRecord[]>
  /** Sets hash, role, token version and forced-change mark at once; `false` for an unknown user. Channel `revocations`. */
  setUserSecurity(userId: string, state: UserSecurity): Promise<boolean>
  /** Sets a user's password hash and clears the forced-change mark; `false` for an unknown user. Channel `users`. */
  setPassword(userId: string, passwordHash: string, opts?: MutationOptions): Promise<boolean>
  /**
   * Marks one user (by email) or, with `null`, every user: their next login can only set a new
   * password; their token version is bumped. The ids marked. Channel `revocations`.
   */
  forcePasswordChange(email: string | null, opts?: MutationOptions): Promise<string[]>

  // Sessions (refresh-token families)
  /** Creates a family and its first token. `ERR_CONFLICT` if the family id or token hash exists. */
  createFamily(session: NewSession): Promise<void>
  getRefreshToken(tokenHash: string): Promise<RefreshTokenRecord | null>
  /** The family a token belongs to, whatever its state; `null` for an unknown hash. */
  getFamilyByTokenHash(tokenHash: string): Promise<SessionFamily | null>
  /**
   * Exchanges a refresh token for its successor, atomically and race-safe across instances:
   * unknown hash, revoked or expired family, or expired token: `invalid` (nothing written);
   * unused: marks it used (`usedAt = now`), stores successor and blob, inserts `next`: `rotated`;
   * used at most `overlapMs` ago: `overlap` with the stored successor and blob (nothing written);
   * used longer ago: revokes the family (reason `reuse`, channel `revocations`, `reuseAudit`): `reuse`.
   * Of N concurrent calls on one unused token, exactly one gets `rotated`.
   */
  rotateToken(input: RotateTokenInput): Promise<RotateResult>
  /** Ends a family; `true` if it was live. Channel `revocations` when it changed. */
  revokeFamily(familyId: string, reason: string, now: number, opts?: MutationOptions): Promise<boolean>
  /** Ends the family of a token (logout); `null` for an unknown hash, else whether it was live. */
  revokeFamilyByTokenHash(tokenHash: string, reason: string, now: number, opts?: MutationOptions):
    Promise<{ familyId: string, userId: string, revoked: boolean } | null>
  /** Ends every live family of a user; how many. */
  revokeAllForUser(userId: string, reason: string, now: number, opts?: MutationOptions): Promise<number>
  /** Ends every live family of the user except `keepFamilyId`; how many. Channel `revocations` when it changed. */
  revokeOtherSessions(userId: string, keepFamilyId: string, reason: string, now: number, opts?: MutationOptions): Promise<number>
  /** Families revoked at or after `since` (epoch ms), except those revoked for one of `exceptReasons`. */
  listRevokedSessions(since: number, exceptReasons?: readonly string[]): Promise<{ id: string, revokedAt: number }[]>
  /** Ends every live family of every user (emergency); how many. */
  revokeAllSessions(reason: string, now: number, opts?: MutationOptions): Promise<number>
  /** Live sessions per kid of their live (unused, unexpired) token, at `now`. Exact. */
  countLiveSessionsByKid(now: number): Promise<Map<string, number>>
  /** Deletes families (and their tokens) that expired or were revoked before `before`; how many. */
  pruneSessions(before: number): Promise<number>
  /**
   * Live sessions at `now` whose live refresh token one of `kids` signed (families revoked
   * after `now` still count). Reads only those kids' unused tokens through a partial index.
   */
  countLiveSessionsForKids(kids: readonly string[], now: number): Promise<Map<string, number>>
  /**
   * The emergency's sweep, one bounded transaction per call: ends about `limit` families
   * created at or before `at` and live at `now` (PostgreSQL: a range of heap pages sized to
   * it; SQLite: at most `limit`, in (expiresAt, id) order), after `after`, with `revokedAt = at`. No change channel is signalled (the not-before refuses their tokens).
   */
  endSessionsBatch(input: { readonly at: number, readonly now: number, readonly reason: string, readonly after: SessionCursor | null, readonly limit: number }): Promise<SessionSweepBatch>
  /**
   * One bounded round of pruning: up to `limit` families that expired or were revoked before
   * `before` (with their tokens), and up to `limit` tokens used before `usedBefore`.
   */
  pruneSessionsBatch(input: { readonly before: number, readonly usedBefore: number, readonly limit: number }): Promise<PruneReport>

  // Keys (managed mode)
  /** Keys ordered by creation, optionally of one purpose. */
  listKeys(purpose?: string): Promise<KeyRecord[]>
  /** The keys and the key-set version they belong to, read consistently. */
  getKeyset(purpose?: string): Promise<Keyset>
  /** The key-set version: 0 on a new store, +1 on every key mutation. */
  getKeysetVersion(): Promise<number>
  /** Inserts one key; the new key-set version. `ERR_CONFLICT` if the version moved or the kid exists. */
  insertKey(key: NewKey, opts: MutationOptions & { readonly expectedVersion: number }): Promise<number>
  /**
   * Inserts and updates keys in one transaction guarded by the key-set version; the new version.
   * `ERR_CONFLICT` (nothing written) if the version moved, a kid is unknown or taken, an
   * `expectState` does not hold, or a purpose would get two `current` keys. Channel `keys`.
   */
  transitionKeys(mutation: KeyMutation): Promise<number>

  // Audit
  /**
   * Appends one row: under a lock that serializes appenders across instances, reads the last
   * row, calls `computeHash(prevHash, row)` synchronously and inserts with `seq = last + 1`.
   */
  appendAudit(event: AuditEventInput, computeHash: ComputeAuditHash): Promise<AuditRecord>
  /** Rows ordered by `seq`. */
  listAudit(query?: AuditQuery): Promise<AuditRecord[]>
  /** When the first row whose secret is exactly `secret` was written; `null` if none. */
  firstAuditAt(secret: string): Promise<number | null>

  // Secret inventory
  /** Adds a secret or updates its kind, cadence and (when given) notes; rotation history is kept. */
  upsertSecret(secret: SecretInput): Promise<SecretRecord>
  getSecret(name: string): Promise<SecretRecord | null>
  /** Ordered by name. */
  listSecrets(): Promise<SecretRecord[]>
  /** Records a rotation and clears the reminders sent; `null` for an unknown secret. */
  markRotated(rotation: RotationRecord, opts?: MutationOptions): Promise<SecretRecord | null>
  /**
   * Records that reminder `stage` (e.g. `T-7d`) was sent for due date `dueAt`; `true` only for
   * the one caller that recorded it first, so each reminder goes out once across instances.
   * A different `dueAt` starts a new set. `false` for an unknown secret.
   */
  markReminderSent(name: string, dueAt: number, stage: string): Promise<boolean>

  // Usage counters
  /** Adds verification counts, summed per (kid, instance, minute, result), in one transaction. */
  addUsage(rows: readonly UsageIncrement[]): Promise<void>
  /** Counts of the minute containing `sinceMs` and every later minute, summed per kid, instance and result. */
  usageSince(sinceMs: number): Promise<UsageTotal[]>
  /** Deletes buckets starting before `before`; how many. */
  pruneUsage(before: number): Promise<number>
  /** Every per-minute counter of the minute containing `sinceMs` and later, oldest first. */
  usageBuckets(sinceMs: number): Promise<UsageBucket[]>

  // Instances
  /** Inserts or refreshes an instance's row. */
  heartbeat(instance: InstanceHeartbeat): Promise<void>
  /** Instances seen at or after `liveSinceMs`, ordered by id. */
  listInstances(liveSinceMs: number): Promise<InstanceHeartbeat[]>
  removeInstance(instanceId: string): Promise<void>
  /** Deletes the heartbeats of instances last seen before `before`; how many. */
  pruneInstances(before: number): Promise<number>

  // Leases
  /** Takes or renews the lease `name` for `ttlMs` from `now`; `true` if `holder` has it now. */
  tryAcquireLease(name: string, holder: string, ttlMs: number, now: number): Promise<boolean>
  /** Gives the lease up; `false` if `holder` did not hold it. */
  releaseLease(name: string, holder: string): Promise<boolean>

  // Settings
  getSetting(name: string): Promise<string | null>
  /** Sets (or with `null` deletes) a setting. Channel `settings`. */
  setSetting(name: string, value: string | null, opts?: MutationOptions): Promise<void>
}

/** The operations bound to one open transaction. */
export type StoreTx = StoreOperations

/** A store: the data operations plus transactions, change notification and lifecycle. */
export interface Store extends StoreOperations {
  readonly dialect: 'sqlite' | 'postgres'
  /** Where the store lives, safe to log (passwords masked). */
  readonly location: string
  /**
   * Runs `fn` in one transaction: every call on `tx` commits together or not at all.
   * Do not call the store itself inside `fn` (a TypeError says so): use `tx`. On SQLite the
   * transaction holds the database's write lock until `fn` settles: keep `fn` short.
   */
  transaction<T>(fn: (tx: StoreTx) => Promise<T>): Promise<T>
  /**
   * Calls `onChange(channel)` after any instance commits a change on that channel, within about
   * a second: PostgreSQL `LISTEN/NOTIFY` (a dedicated connection that reconnects; every channel
   * is signalled after a reconnect, since notifications may have been missed), SQLite polling of
   * change counters (`pollIntervalMs`, default 250). Resolves once listening; rejects with
   * `ERR_STORE_UNAVAILABLE` if that fails. The returned function unsubscribes.
   */
  subscribe(onChange: ChangeListener): Promise<() => Promise<void>>
  /** Each channel's change counter; a counter that moved means the channel changed. */
  changeCounters(): Promise<Readonly<Record<ChangeChannel, number>>>
  /** Resolves if the database answers. */
  ping(): Promise<void>
  /** Stops notifications and closes connections. Idempotent. */
  close(): Promise<void>
}
