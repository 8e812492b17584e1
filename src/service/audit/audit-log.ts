/**
 * The audit log: the one place rows are written and checked, for the service, the admin API,
 * the dashboard, the CLI (managed and env-file) and rotate-db.
 *
 * - {@link AuditLog.append} and {@link AuditLog.write} mask the notes and chain the row under
 *   the key the chain is at: across a master-key rollout (REKEY_MASTER_KEY_PREV set) that is
 *   the old key until the rotation commits, the new one after (`segments.ts`).
 * - {@link AuditLog.verify} checks every segment with the keys at hand, as `rekey audit
 *   --verify` and `GET /api/admin/audit/verify` both answer.
 */
import type { AuditChainReport, VerifyAuditOptions } from '../../core/audit-chain.ts'
import { maskSecrets } from '../../core/mask.ts'
import type { Store, StoreOperations } from '../../store/store.ts'
import type { AuditEventInput, AuditRecord, AuditWrite, ComputeAuditHash } from '../../store/types.ts'
import { auditHasher } from './audit-hash.ts'
import { masterKeyId, verifyAuditLog } from './segments.ts'

/** The setting naming (by {@link masterKeyId}) the master key the audit chain continues under. */
export const MASTER_KEY_ID_SETTING = 'master-key.id'

/** One audit event as a caller describes it (`Date | Secret | Operator | Method | Notes | Request`). */
export interface AuditFields {
  readonly secret: string
  readonly operator: string
  readonly method: string
  readonly notes: string
  readonly requestId?: string | null
  /** When it happened, epoch ms. Default `Date.now()`. */
  readonly at?: number
  /** Values to mask wherever they appear in the notes, besides what {@link maskSecrets} recognises. */
  readonly liveSecrets?: readonly string[]
}

/** The event to store: notes masked, times and request id filled in. */
export function auditEvent(fields: AuditFields): AuditEventInput {
  return {
    at: fields.at ?? Date.now(),
    secret: fields.secret,
    operator: fields.operator,
    method: fields.method,
    notes: maskSecrets(fields.notes, { liveSecrets: fields.liveSecrets ?? [] }),
    requestId: fields.requestId ?? null,
  }
}

/** The master keys the log is kept with. */
export interface AuditKeys {
  /** REKEY_MASTER_KEY. */
  readonly current: Buffer
  /** REKEY_MASTER_KEY_PREV, while a master-key rotation is rolled out. */
  readonly previous?: Buffer | undefined
}

/** Options of {@link AuditLog.open}. */
export interface OpenAuditLogOptions {
  /** Follow the store's settings, so a master-key rotation committed elsewhere switches the key at once (a long-lived service). Default false. */
  readonly follow?: boolean
}

/** The audit log of one store under its master key(s). */
export class AuditLog {
  readonly #store: Store
  readonly #keys: readonly Buffer[]
  readonly #currentHash: ComputeAuditHash
  readonly #previousHash: ComputeAuditHash | null
  readonly #previousId: string | null
  #active: ComputeAuditHash
  #unsubscribe: () => Promise<void> = async () => {}

  private constructor(store: Store, keys: AuditKeys) {
    this.#store = store
    this.#keys = keys.previous === undefined ? [keys.current] : [keys.current, keys.previous]
    this.#currentHash = auditHasher(keys.current)
    this.#previousHash = keys.previous === undefined ? null : auditHasher(keys.previous)
    this.#previousId = keys.previous === undefined ? null : masterKeyId(keys.previous)
    this.#active = this.#currentHash
  }

  /**
   * The audit log of `store`. Without a previous key, rows are chained under the current key.
   * With one (a rotation being rolled out), under the key the chain continues under: the one
   * {@link MASTER_KEY_ID_SETTING} names once the rotation committed, before that the key the
   * last row verifies under.
   */
  static async open(store: Store, keys: AuditKeys, options: OpenAuditLogOptions = {}): Promise<AuditLog> {
    const log = new AuditLog(store, keys)
    if (log.#previousHash === null) return log
    await log.#choose()
    if (options.follow === true) {
      log.#unsubscribe = await store.subscribe((channel) => {
        if (channel === 'settings') void log.#choose().catch(() => {})
      })
    }
    return log
  }

  /**
   * Re-reads which key the chain is at (a no-op without a previous key). {@link append} does it
   * first, so a row never lands under the old key after a rotation another process committed;
   * the hash handed to store mutations follows the store's change feed instead.
   */
  async refresh(): Promise<void> {
    await this.#choose()
  }

  async #choose(): Promise<void> {
    const previous = this.#previousHash
    if (previous === null) return
    const id = await this.#store.getSetting(MASTER_KEY_ID_SETTING)
    if (id !== null) {
      this.#active = id === this.#previousId ? previous : this.#currentHash
      return
    }
    const last = (await this.#store.listAudit()).at(-1)
    this.#active = last !== undefined && previous(last.prevHash, last) === last.hash ? previous : this.#currentHash
  }

  /** The chain's hash for the next row, under the key the chain is at (for store calls that take one). */
  readonly hash: ComputeAuditHash = (prevHash, row) => this.#active(prevHash, row)

  /** The `opts.audit` of a store mutation: the change and its (masked) row in one transaction. */
  write(fields: AuditFields): AuditWrite {
    return { event: auditEvent(fields), computeHash: this.hash }
  }

  /**
   * True when the newest row verifies under one of this log's keys (or there is no row). A
   * wrong master key would otherwise break the chain with its very first row.
   */
  async fitsChain(): Promise<boolean> {
    const last = (await this.#store.listAudit()).at(-1)
    if (last === undefined) return true
    return [this.#currentHash, ...(this.#previousHash === null ? [] : [this.#previousHash])].some((hash) => hash(last.prevHash, last) === last.hash)
  }

  /** Appends one masked row; pass a transaction's `tx` to append it together with other changes. */
  async append(fields: AuditFields, tx?: Pick<StoreOperations, 'appendAudit'>): Promise<AuditRecord> {
    // Inside a caller's transaction the store may be locked: the caller refreshes before it.
    if (tx === undefined) await this.refresh()
    return (tx ?? this.#store).appendAudit(auditEvent(fields), this.hash)
  }

  /** Checks the whole chain, segment by segment, with the keys at hand. */
  async verify(options: VerifyAuditOptions = {}): Promise<AuditChainReport> {
    return this.verifyRows(await this.#store.listAudit(), options)
  }

  /** {@link verify} over rows already read from this log's store. */
  verifyRows(rows: readonly AuditRecord[], options: VerifyAuditOptions = {}): AuditChainReport {
    return verifyAuditLog(rows, this.#keys, options)
  }

  /** Stops following the store's settings. */
  close(): Promise<void> {
    return this.#unsubscribe()
  }
}
