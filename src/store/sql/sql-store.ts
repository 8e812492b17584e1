/**
 * The Store, written once over a {@link SqlDriver}. Each method runs its statements on the open
 * transaction when the store is bound to one, or else reads directly and writes in a transaction
 * of its own; driver errors leave as ERR_CONFLICT / ERR_STORE_UNAVAILABLE.
 */
import { AsyncLocalStorage } from 'node:async_hooks'
import type {
  AuditQuery, ChangeChannel, ChangeListener, KeyMutation, MutationOptions, PruneReport, RotateResult, RotateTokenInput, SessionCursor, SessionSweepBatch, Store, StoreTx,
} from '../store.ts'
import type {
  AuditEventInput, AuditRecord, ComputeAuditHash, InstanceHeartbeat, KeyRecord, Keyset, NewKey, NewSession,
  NewUser, RefreshTokenRecord, Role, RotationRecord, SecretInput, SecretRecord, SessionFamily, UsageIncrement,
  UsageBucket, UsageTotal, UserRecord, UserSecurity,
} from '../types.ts'
import { unavailable } from '../errors.ts'
import type { SqlDriver, SqlExecutor } from './executor.ts'
import * as audit from './audit.ts'
import { readChangeCounters } from './changes.ts'
import * as coord from './coordination.ts'
import * as inventory from './inventory.ts'
import * as keys from './keys.ts'
import * as sessions from './sessions.ts'
import { endSessionsBatch } from './session-sweep.ts'
import * as usage from './usage.ts'
import * as users from './users.ts'

/** The lock domain of the transaction the current async context runs in, if any. */
const txScope = new AsyncLocalStorage<object>()

/** A transaction a store is bound to; `open` turns false once its function settled. */
interface TxBinding {
  readonly q: SqlExecutor
  open: boolean
}

export class SqlStore implements Store {
  readonly dialect: 'sqlite' | 'postgres'
  readonly location: string
  readonly #driver: SqlDriver
  readonly #tx: TxBinding | null
  #closed = false

  /** Use `openStore()`; `tx` binds the store to one open transaction. */
  constructor(driver: SqlDriver, tx: TxBinding | null = null) {
    this.#driver = driver
    this.#tx = tx
    this.dialect = driver.dialect
    this.location = driver.location
  }

  /** The transaction to run on, or `null` for the root executor. */
  #enter(): SqlExecutor | null {
    if (this.#tx !== null) {
      if (!this.#tx.open) throw new TypeError('this transaction has ended; use the store')
      return this.#tx.q
    }
    if (this.#closed) throw unavailable('the store is closed')
    // Calling the store from inside its own transaction would wait forever for the lock it holds.
    if (txScope.getStore() === this.#driver.lockDomain) throw new TypeError('inside store.transaction(fn), call the tx argument, not the store')
    return null
  }

  async #read<T>(fn: (q: SqlExecutor) => Promise<T>): Promise<T> {
    try {
      return await fn(this.#enter() ?? this.#driver.root)
    } catch (err) {
      throw this.#driver.mapError(err)
    }
  }

  async #write<T>(fn: (q: SqlExecutor) => Promise<T>): Promise<T> {
    try {
      const q = this.#enter()
      // The store's own statements are pure database work: safe to retry on a fresh connection.
      return q === null ? await this.#driver.transaction(fn, { retry: true }) : await fn(q)
    } catch (err) {
      throw this.#driver.mapError(err)
    }
  }

  async transaction<T>(fn: (tx: StoreTx) => Promise<T>): Promise<T> {
    if (this.#tx !== null) return fn(this) // already inside one: join it
    return this.#write((q) => {
      const binding: TxBinding = { q, open: true }
      return txScope.run(this.#driver.lockDomain, () => fn(new SqlStore(this.#driver, binding)))
        .finally(() => { binding.open = false })
    })
  }

  // Users
  createUser(user: NewUser): Promise<UserRecord> { return this.#write((q) => users.createUser(q, user)) }
  getUserByEmail(email: string): Promise<UserRecord | null> { return this.#read((q) => users.getUserByEmail(q, email)) }
  getUserById(id: string): Promise<UserRecord | null> { return this.#read((q) => users.getUserById(q, id)) }
  bumpTokenVersion(userId: string, opts: MutationOptions = {}): Promise<number | null> {
    return this.#write(async (q) => {
      const version = await users.bumpTokenVersion(q, userId)
      if (version !== null) await audit.appendOptional(q, opts.audit)
      return version
    })
  }
  setRole(userId: string, role: Role, opts: MutationOptions = {}): Promise<boolean> {
    return this.#write(async (q) => {
      const found = await users.setRole(q, userId, role)
      if (found) await audit.appendOptional(q, opts.audit)
      return found
    })
  }
  setPasswordHash(userId: string, passwordHash: string, opts: MutationOptions = {}): Promise<boolean> {
    return this.#write(async (q) => {
      const found = await users.setPasswordHash(q, userId, passwordHash)
      if (found) await audit.appendOptional(q, opts.audit)
      return found
    })
  }
  countUsers(): Promise<number> { return this.#read((q) => users.countUsers(q)) }
  listUsers(): Promise<UserRecord[]> { return this.#read((q) => users.listUsers(q)) }
  setUserSecurity(userId: string, state: UserSecurity): Promise<boolean> { return this.#write((q) => users.setUserSecurity(q, userId, state)) }
  setPassword(userId: string, passwordHash: string, opts: MutationOptions = {}): Promise<boolean> {
    return this.#write(async (q) => {
      const found = await users.setPassword(q, userId, passwordHash)
      if (found) await audit.appendOptional(q, opts.audit)
      return found
    })
  }
  forcePasswordChange(email: string | null, opts: MutationOptions = {}): Promise<string[]> {
    return this.#write(async (q) => {
      const ids = await users.forcePasswordChange(q, email)
      if (ids.length > 0) await audit.appendOptional(q, opts.audit)
      return ids
    })
  }

  // Sessions
  createFamily(session: NewSession): Promise<void> { return this.#write((q) => sessions.createFamily(q, session)) }
  getRefreshToken(tokenHash: string): Promise<RefreshTokenRecord | null> { return this.#read((q) => sessions.getRefreshToken(q, tokenHash)) }
  getFamilyByTokenHash(tokenHash: string): Promise<SessionFamily | null> { return this.#read((q) => sessions.getFamilyByTokenHash(q, tokenHash)) }
  async rotateToken(input: RotateTokenInput): Promise<RotateResult> {
    if (this.dialect === 'postgres') {
      // One round trip for every outcome but reuse, which needs an audited transaction.
      const done = await this.#read((q) => sessions.rotateTokenOneTrip(q, input))
      if (done !== null) return done
    }
    return this.#write((q) => sessions.rotateToken(q, input))
  }
  revokeFamily(familyId: string, reason: string, now: number, opts?: MutationOptions): Promise<boolean> {
    return this.#write((q) => sessions.revokeFamily(q, familyId, reason, now, opts))
  }
  revokeFamilyByTokenHash(tokenHash: string, reason: string, now: number, opts?: MutationOptions):
  Promise<{ familyId: string, userId: string, revoked: boolean } | null> {
    return this.#write((q) => sessions.revokeFamilyByTokenHash(q, tokenHash, reason, now, opts))
  }
  revokeAllForUser(userId: string, reason: string, now: number, opts?: MutationOptions): Promise<number> {
    return this.#write((q) => sessions.revokeAllForUser(q, userId, reason, now, opts))
  }
  revokeOtherSessions(userId: string, keepFamilyId: string, reason: string, now: number, opts?: MutationOptions): Promise<number> {
    return this.#write((q) => sessions.revokeOtherSessions(q, userId, keepFamilyId, reason, now, opts))
  }
  listRevokedSessions(since: number, exceptReasons: readonly string[] = []): Promise<{ id: string, revokedAt: number }[]> {
    return this.#read((q) => sessions.listRevokedSessions(q, since, exceptReasons))
  }
  revokeAllSessions(reason: string, now: number, opts?: MutationOptions): Promise<number> {
    return this.#write((q) => sessions.revokeAllSessions(q, reason, now, opts))
  }
  countLiveSessionsByKid(now: number): Promise<Map<string, number>> { return this.#read((q) => sessions.countLiveSessionsByKid(q, now)) }
  pruneSessions(before: number): Promise<number> { return this.#write((q) => sessions.pruneSessions(q, before)) }
  countLiveSessionsForKids(kids: readonly string[], now: number): Promise<Map<string, number>> {
    return this.#read((q) => sessions.countLiveSessionsForKids(q, kids, now))
  }
  endSessionsBatch(input: { at: number, now: number, reason: string, after: SessionCursor | null, limit: number }): Promise<SessionSweepBatch> {
    return this.#write((q) => endSessionsBatch(q, input))
  }
  pruneSessionsBatch(input: { before: number, usedBefore: number, limit: number }): Promise<PruneReport> {
    return this.#write((q) => sessions.pruneSessionsBatch(q, input))
  }

  // Keys
  listKeys(purpose?: string): Promise<KeyRecord[]> { return this.#read((q) => keys.listKeys(q, purpose)) }
  getKeyset(purpose?: string): Promise<Keyset> { return this.#read((q) => keys.getKeyset(q, purpose)) }
  getKeysetVersion(): Promise<number> { return this.#read((q) => keys.getKeysetVersion(q)) }
  insertKey(key: NewKey, opts: MutationOptions & { readonly expectedVersion: number }): Promise<number> {
    return this.#write((q) => keys.transitionKeys(q, { ...opts, insert: [key] }))
  }
  transitionKeys(mutation: KeyMutation): Promise<number> { return this.#write((q) => keys.transitionKeys(q, mutation)) }

  // Audit
  appendAudit(event: AuditEventInput, computeHash: ComputeAuditHash): Promise<AuditRecord> {
    return this.#write((q) => audit.appendAudit(q, event, computeHash))
  }
  listAudit(query?: AuditQuery): Promise<AuditRecord[]> { return this.#read((q) => audit.listAudit(q, query)) }
  firstAuditAt(secret: string): Promise<number | null> { return this.#read((q) => audit.firstAuditAt(q, secret)) }

  // Secret inventory
  upsertSecret(secret: SecretInput): Promise<SecretRecord> { return this.#write((q) => inventory.upsertSecret(q, secret)) }
  getSecret(name: string): Promise<SecretRecord | null> { return this.#read((q) => inventory.getSecret(q, name)) }
  listSecrets(): Promise<SecretRecord[]> { return this.#read((q) => inventory.listSecrets(q)) }
  markRotated(rotation: RotationRecord, opts?: MutationOptions): Promise<SecretRecord | null> {
    return this.#write((q) => inventory.markRotated(q, rotation, opts))
  }
  markReminderSent(name: string, dueAt: number, stage: string): Promise<boolean> {
    return this.#write((q) => inventory.markReminderSent(q, name, dueAt, stage))
  }

  // Usage counters
  addUsage(rows: readonly UsageIncrement[]): Promise<void> { return this.#write((q) => usage.addUsage(q, rows)) }
  usageSince(sinceMs: number): Promise<UsageTotal[]> { return this.#read((q) => usage.usageSince(q, sinceMs)) }
  pruneUsage(before: number): Promise<number> { return this.#write((q) => usage.pruneUsage(q, before)) }
  usageBuckets(sinceMs: number): Promise<UsageBucket[]> { return this.#read((q) => usage.usageBuckets(q, sinceMs)) }

  // Instances, leases, settings
  heartbeat(instance: InstanceHeartbeat): Promise<void> { return this.#write((q) => coord.heartbeat(q, instance)) }
  listInstances(liveSinceMs: number): Promise<InstanceHeartbeat[]> { return this.#read((q) => coord.listInstances(q, liveSinceMs)) }
  removeInstance(instanceId: string): Promise<void> { return this.#write((q) => coord.removeInstance(q, instanceId)) }
  pruneInstances(before: number): Promise<number> { return this.#write((q) => coord.pruneInstances(q, before)) }
  tryAcquireLease(name: string, holder: string, ttlMs: number, now: number): Promise<boolean> {
    return this.#write((q) => coord.tryAcquireLease(q, name, holder, ttlMs, now))
  }
  releaseLease(name: string, holder: string): Promise<boolean> { return this.#write((q) => coord.releaseLease(q, name, holder)) }
  getSetting(name: string): Promise<string | null> { return this.#read((q) => coord.getSetting(q, name)) }
  setSetting(name: string, value: string | null, opts?: MutationOptions): Promise<void> {
    return this.#write((q) => coord.setSetting(q, name, value, opts))
  }

  // Change notification and lifecycle
  async subscribe(onChange: ChangeListener): Promise<() => Promise<void>> {
    this.#enter()
    try {
      return await this.#driver.subscribe(onChange)
    } catch (err) {
      throw this.#driver.mapError(err)
    }
  }
  changeCounters(): Promise<Readonly<Record<ChangeChannel, number>>> { return this.#read((q) => readChangeCounters(q)) }
  async ping(): Promise<void> {
    try {
      this.#enter()
      await this.#driver.ping()
    } catch (err) {
      throw this.#driver.mapError(err)
    }
  }
  async close(): Promise<void> {
    if (this.#tx !== null || this.#closed) return
    this.#closed = true
    await this.#driver.close()
  }
}
