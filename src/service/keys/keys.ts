/**
 * The service's keys: access and refresh keyrings, from the environment (env mode) or from the
 * store (managed mode), kept current on every instance through the store's `keys` channel.
 *
 * Managed keys are sealed under the master key, bound (AEAD additional data) to their kid,
 * purpose, algorithm and state: every state change re-seals the material, and a row whose
 * state was edited behind rekey's back (`UPDATE keys SET state = 'previous'` on a revoked key)
 * no longer opens, so it is refused loudly on load instead of verifying tokens again. Rows
 * sealed before that binding (bound to the kid only) still open and are re-sealed at the next
 * start or managed command ({@link resealLegacyKeys}).
 *
 * On a store without keys, the first instance creates one `current` key per purpose, guarded
 * by the key-set version; an instance that loses that race loads the winner's keys.
 */
import { createHash, createSecretKey, generateKeyPairSync, hkdfSync, randomBytes } from 'node:crypto'
import { DATA_KEY_PURPOSE } from '../../core/data-keys.ts'
import type { Env } from '../../core/env.ts'
import { RekeyError } from '../../core/errors.ts'
import { hasCode } from '../../store/errors.ts'
import { Keyring } from '../../core/keyring.ts'
import type { KeyInput } from '../../core/key.ts'
import { deriveKid } from '../../core/kid.ts'
import { open, openWithAny, seal } from '../../core/seal.ts'
import type { Store } from '../../store/store.ts'
import type { KeyRecord, KeyState, KeyUpdate, NewKey } from '../../store/types.ts'
import type { ManagedAlg } from '../../core/algorithms.ts'
import { auditWrite } from '../audit/audit-hash.ts'
import type { ComputeAuditHash } from '../../store/types.ts'
import type { Clock } from '../clock.ts'
import { Reloader } from '../cluster/reloader.ts'
import type { KeySource } from '../../config/load.ts'

/** The purposes of the service's own keys. */
export const KEY_PURPOSES = Object.freeze(['access', 'refresh'] as const)
export type ServiceKeyPurpose = (typeof KEY_PURPOSES)[number]

/** What {@link KeyService} needs. */
export interface KeyServiceOptions {
  readonly source: KeySource
  readonly env: Env
  readonly store: Store
  readonly masterKey: Buffer
  /** REKEY_MASTER_KEY_PREV during a master-key rotation: keys still sealed under it open too. */
  readonly previousMasterKey?: Buffer
  readonly computeHash: ComputeAuditHash
  readonly clock: Clock
  readonly accessTokenTtl: number
  readonly refreshTokenTtl: number
  readonly log: { info(obj: object, msg: string): void, warn(obj: object, msg: string): void, error(obj: object, msg: string): void }
  /** Algorithm of the first managed access key (REKEY_ACCESS_KEY_ALG). Default HS256. */
  readonly accessKeyAlg?: ManagedAlg
  /** Called after a new key-set version is loaded (the service sends a heartbeat, which acknowledges it). */
  readonly onLoad?: (version: number) => void
}

/** What a key's sealed material is bound to. */
export interface KeyBinding {
  readonly kid: string
  readonly purpose: string
  readonly alg: string
  readonly state: KeyState
}

const KEY_STATES: readonly KeyState[] = ['next', 'current', 'previous', 'retired', 'revoked']

/** The additional data binding sealed material to its row's identity and state. */
function bindingAad(k: KeyBinding): string {
  return `rekey/key/v2 ${JSON.stringify([k.kid, k.purpose, k.alg, k.state])}`
}

/** The additional data of rows sealed before the binding: the kid only. */
const legacyAad = (kid: string): string => `rekey/key/${kid}`

const DATA_KEY_ACCESS_INFO = 'rekey/keys/data/v1'

/**
 * The key the managed data keys (purpose `data`) are sealed under: HKDF-SHA-256 of the master
 * key. An application given only this key (REKEY_DATA_KEY_ACCESS, `rekey gen
 * --data-key-access`) opens the data keys and nothing else: not the signing keys, not the
 * audit chain, and it cannot work back to the master key.
 */
export function dataKeyAccessKey(masterKey: Buffer): Buffer {
  return Buffer.from(hkdfSync('sha256', masterKey, Buffer.alloc(0), DATA_KEY_ACCESS_INFO, 32))
}

/** The key a row of `purpose` is sealed under: the master key, or for data keys the key derived from it. */
function sealingKeyOf(masterKey: Buffer, purpose: string): Buffer {
  return purpose === DATA_KEY_PURPOSE ? dataKeyAccessKey(masterKey) : masterKey
}

/** Seals key material (a JWK) for the store, bound to the key's kid, purpose, algorithm and state. */
export function sealKeyMaterial(masterKey: Buffer, key: KeyBinding, jwk: Record<string, unknown>): string {
  return seal(sealingKeyOf(masterKey, key.purpose), JSON.stringify(jwk), bindingAad(key))
}

/**
 * Opens a stored key's material with any of `masterKeys`. `legacy` when the row was sealed
 * before the binding (it opens by its kid only and should be re-sealed). A row whose state,
 * purpose or algorithm changed behind rekey's back is refused with ERR_UNSAFE naming what it
 * was sealed as; material that opens under none of the keys is ERR_CONFIG (wrong master key).
 */
export function openKeyMaterial(masterKeys: readonly Buffer[], record: KeyRecord): { jwk: Record<string, unknown>, legacy: boolean, masterKey: Buffer } {
  let opened: ReturnType<typeof openSealedKey>
  try {
    opened = openSealedKey(masterKeys.map((k) => sealingKeyOf(k, record.purpose)), record)
  } catch (err) {
    throw movedPurpose(masterKeys, record) ?? err
  }
  return { jwk: opened.jwk, legacy: opened.legacy, masterKey: masterKeys[opened.index] as Buffer }
}

/**
 * A row that does not open as its purpose but does as another (a data key's row relabelled
 * `access`, a signing key's relabelled `data`): ERR_UNSAFE naming what it was sealed as, not
 * the "wrong master key" it would otherwise be taken for. Undefined when no purpose opens it.
 */
function movedPurpose(masterKeys: readonly Buffer[], record: KeyRecord): RekeyError | undefined {
  for (const purpose of [...KEY_PURPOSES, DATA_KEY_PURPOSE]) {
    if (purpose === record.purpose) continue
    for (const state of KEY_STATES) {
      for (const key of masterKeys) {
        try {
          open(sealingKeyOf(key, purpose), record.sealedMaterial, bindingAad({ ...record, purpose, state }))
        } catch {
          continue
        }
        return new RekeyError('ERR_UNSAFE', `the key ${record.kid} is stored with purpose ${record.purpose} but rekey sealed it with purpose ${purpose}: its row was changed outside rekey (someone with write access to the database); refusing to load it. Set its purpose back to ${purpose}`)
      }
    }
  }
  return undefined
}

/**
 * Opens a data key's row with the data-key access keys themselves (an application holding
 * REKEY_DATA_KEY_ACCESS, not the master key); refused like {@link openKeyMaterial}.
 */
export function openDataKeyMaterial(accessKeys: readonly Buffer[], record: KeyRecord): Record<string, unknown> {
  if (record.purpose !== DATA_KEY_PURPOSE) throw new TypeError('only data keys open with a data-key access key')
  return openSealedKey(accessKeys, record).jwk
}

/** Opens a row with the keys it may be sealed under; `index` says which one opened it. */
function openSealedKey(sealingKeys: readonly Buffer[], record: KeyRecord): { jwk: Record<string, unknown>, legacy: boolean, index: number } {
  const masterKeys = sealingKeys
  const attempt = (aad: string): { jwk: Record<string, unknown>, index: number } | null => {
    for (const [index, key] of masterKeys.entries()) {
      try {
        return { jwk: JSON.parse(open(key, record.sealedMaterial, aad).toString('utf8')) as Record<string, unknown>, index }
      } catch { /* the next key, or none */ }
    }
    return null
  }
  const bound = attempt(bindingAad(record))
  if (bound !== null) return { ...bound, legacy: false }
  const legacy = attempt(legacyAad(record.kid))
  if (legacy !== null) return { ...legacy, legacy: true }
  for (const state of KEY_STATES) {
    if (state !== record.state && attempt(bindingAad({ ...record, state })) !== null) {
      throw new RekeyError('ERR_UNSAFE', `the ${record.purpose} key ${record.kid} is stored as ${record.state} but rekey left it ${state}: its row was changed outside rekey (someone with write access to the database); refusing to load it. Set its state back to ${state}${record.purpose === DATA_KEY_PURPOSE ? '' : ', or run rekey emergency'}`)
    }
  }
  // Neither form opens: the wrong master key, or altered material; the seal says so in its own words.
  openWithAny(masterKeys, record.sealedMaterial, bindingAad(record))
  throw new RekeyError('ERR_CONFIG', 'A sealed value does not open with this master key')
}

/**
 * The updates of a key mutation, each state change carrying the material re-sealed for its
 * new state (the binding moves with the state), under the same master key that opened it (so
 * instances still on the previous key during a master-key rollout keep opening it). `keys` are
 * the rows the mutation starts from.
 */
export function rebindKeyUpdates(masterKeys: readonly Buffer[], keys: readonly KeyRecord[], updates: readonly KeyUpdate[]): KeyUpdate[] {
  return updates.map((u) => {
    const record = keys.find((k) => k.kid === u.kid)
    if (u.state === undefined || record === undefined || u.sealedMaterial !== undefined) return u
    const { jwk, masterKey } = openKeyMaterial(masterKeys, record)
    return { ...u, sealedMaterial: sealKeyMaterial(masterKey, { ...record, state: u.state }, jwk) }
  })
}

/**
 * Re-seals the rows sealed before the binding (kid only) bound to their kid, purpose,
 * algorithm and state, in one key-set change with its audit row; the number re-sealed.
 * A row that opens under neither form is left for the loader to refuse.
 */
export async function resealLegacyKeys(store: Store, masterKey: Buffer, computeHash: ComputeAuditHash, operator: string, now: number): Promise<number> {
  const keyset = await store.getKeyset()
  const update: KeyUpdate[] = []
  for (const record of keyset.keys) {
    let opened: { jwk: Record<string, unknown>, legacy: boolean }
    try {
      opened = openKeyMaterial([masterKey], record)
    } catch {
      continue
    }
    if (opened.legacy) update.push({ kid: record.kid, expectState: record.state, sealedMaterial: sealKeyMaterial(masterKey, record, opened.jwk) })
  }
  if (update.length === 0) return 0
  try {
    await store.transitionKeys({
      expectedVersion: keyset.version,
      update,
      audit: auditWrite(computeHash, {
        at: now, secret: 'jwt-keys', operator, method: 'reseal', requestId: null,
        notes: `re-sealed ${update.map((u) => u.kid).join(', ')} bound to kid, purpose, algorithm and state`,
      }),
    })
  } catch (err) {
    // Another instance re-sealed (or rotated) first: the next load sees its rows.
    if (!hasCode(err, 'ERR_CONFLICT')) throw err
    return 0
  }
  return update.length
}

export type { ManagedAlg }

/** RFC 7638 thumbprint members of a public JWK, in lexicographic order. */
const THUMBPRINT_MEMBERS: Readonly<Record<string, readonly string[]>> = { OKP: ['crv', 'kty', 'x'], EC: ['crv', 'kty', 'x', 'y'], RSA: ['e', 'kty', 'n'] }

/**
 * A new key for `purpose`, sealed for `state` (default `current`; a staged key is `next`): a
 * 32-byte HMAC secret, or a key pair for EdDSA, ES256, RS256.
 */
export function newManagedKey(masterKey: Buffer, purpose: string, now: number, alg: ManagedAlg = 'HS256', state: KeyState = 'current'): NewKey {
  if (alg === 'HS256') {
    const secret = randomBytes(32)
    const kid = deriveKid(createSecretKey(secret))
    const sealedMaterial = sealKeyMaterial(masterKey, { kid, purpose, alg, state }, { kty: 'oct', k: secret.toString('base64url') })
    return { kid, purpose, alg, state, sealedMaterial, createdAt: now, activatedAt: state === 'next' ? null : now }
  }
  const { privateKey } = alg === 'EdDSA'
    ? generateKeyPairSync('ed25519')
    : alg === 'ES256' ? generateKeyPairSync('ec', { namedCurve: 'P-256' }) : generateKeyPairSync('rsa', { modulusLength: 2048 })
  const jwk = privateKey.export({ format: 'jwk' }) as Record<string, unknown>
  // The kid is the public key's RFC 7638 thumbprint: public, stable, and the same everywhere.
  const members = THUMBPRINT_MEMBERS[jwk.kty as string] ?? []
  const canonical = JSON.stringify(Object.fromEntries(members.map((m) => [m, jwk[m]])))
  const kid = createHash('sha256').update(canonical).digest('base64url').slice(0, 16)
  const sealedMaterial = sealKeyMaterial(masterKey, { kid, purpose, alg, state }, { ...jwk, kid, alg })
  return { kid, purpose, alg, state, sealedMaterial, createdAt: now, activatedAt: state === 'next' ? null : now }
}

/**
 * Opens a stored key into a keyring input, with the master key or (during a master-key
 * rotation) any of several. Throws ERR_CONFIG when none opens it.
 */
export function keyInputOf(masterKey: Buffer | readonly Buffer[], record: KeyRecord): KeyInput {
  const keys = Buffer.isBuffer(masterKey) ? [masterKey] : masterKey
  const { jwk } = openKeyMaterial(keys, record)
  const dates = {
    createdAt: new Date(record.createdAt).toISOString(),
    ...(record.activatedAt === null ? {} : { activatedAt: new Date(record.activatedAt).toISOString() }),
    ...(record.retireAfter === null ? {} : { retireAfter: new Date(record.retireAfter).toISOString() }),
  }
  const base = { kid: record.kid, alg: record.alg as KeyInput['alg'], state: record.state, ...dates }
  if (jwk.kty === 'oct' && typeof jwk.k === 'string') return { ...base, secret: Buffer.from(jwk.k, 'base64url') }
  return { ...base, jwk: jwk as KeyInput['jwk'] & object }
}

/** The access and refresh keyrings of a running service. */
export class KeyService {
  readonly #options: KeyServiceOptions
  #access: Keyring | undefined
  #refresh: Keyring | undefined
  #version = 0
  #unsubscribe: (() => Promise<void>) | null = null
  // Failures logged once per distinct failure, then again at most every 10 min while it lasts.
  readonly #reloader = new Reloader({
    load: () => this.#load(),
    onFailure: (err) => this.#options.log.error({ err }, 'reloading keys failed; keeping the keys loaded and retrying'),
    onRecovered: () => this.#options.log.info({}, 'reloading keys works again'),
    relogMs: 10 * 60_000,
  })

  constructor(options: KeyServiceOptions) {
    this.#options = options
  }

  get source(): KeySource {
    return this.#options.source
  }

  /** The key-set version loaded (0 in env mode). */
  get version(): number {
    return this.#version
  }

  get loaded(): boolean {
    return this.#access !== undefined && this.#refresh !== undefined
  }

  get access(): Keyring {
    if (this.#access === undefined) throw new Error('keys are not loaded')
    return this.#access
  }

  get refresh(): Keyring {
    if (this.#refresh === undefined) throw new Error('keys are not loaded')
    return this.#refresh
  }

  /** Loads the keys (creating them on a new store) and, in managed mode, follows changes. */
  async start(): Promise<void> {
    if (this.#options.source === 'env') {
      this.#access = Keyring.fromEnv(this.#options.env, { purpose: 'access' })
      this.#refresh = Keyring.fromEnv(this.#options.env, { purpose: 'refresh' })
      return
    }
    await this.#bootstrap()
    this.#unsubscribe = await this.#options.store.subscribe((channel) => {
      if (channel === 'keys') void this.reload()
    })
    // A change committed between the first load and the subscription was notified before this
    // instance listened (and a rotation does not wait for an instance not listed yet): read again.
    await this.reload()
  }

  async stop(): Promise<void> {
    const unsubscribe = this.#unsubscribe
    this.#unsubscribe = null
    if (unsubscribe !== null) await unsubscribe().catch(() => {})
    await this.#reloader.stop()
  }

  /**
   * Re-reads the key set; concurrent calls coalesce into one more read. Never throws: the keys
   * in memory keep verifying, and a failure is retried by itself (see {@link Reloader}).
   */
  reload(): Promise<void> {
    return this.#reloader.reload()
  }

  async #bootstrap(): Promise<void> {
    const { store, masterKey, clock } = this.#options
    // During a master-key rotation the rotation itself re-wraps (and binds) every key.
    if (this.#options.previousMasterKey === undefined) {
      const resealed = await resealLegacyKeys(store, masterKey, this.#options.computeHash, 'rekey-serve', clock.now())
      if (resealed > 0) this.#options.log.info({ keys: resealed }, 're-sealed keys bound to their state')
    }
    for (let attempt = 0; attempt < 5; attempt++) {
      const keyset = await store.getKeyset()
      const missing = KEY_PURPOSES.filter((p) => !keyset.keys.some((k) => k.purpose === p && k.state === 'current'))
      if (missing.length === 0) break
      const now = clock.now()
      const insert = missing.map((purpose) => newManagedKey(masterKey, purpose, now, purpose === 'access' ? this.#options.accessKeyAlg ?? 'HS256' : 'HS256'))
      try {
        await store.transitionKeys({
          expectedVersion: keyset.version,
          insert,
          audit: auditWrite(this.#options.computeHash, {
            at: now,
            secret: missing.map((p) => `jwt-${p}`).join(','),
            operator: 'rekey-serve',
            method: 'create',
            notes: `first start: created ${insert.map((k) => `${k.purpose} key ${k.kid}`).join(' and ')}`,
            requestId: null,
          }),
        })
        this.#options.log.info({ kids: insert.map((k) => k.kid) }, 'created the first managed keys')
        break
      } catch (err) {
        if (!hasCode(err, 'ERR_CONFLICT')) throw err
        // Another instance created them first: read theirs.
      }
    }
    await this.#load()
  }

  async #load(): Promise<void> {
    const keyset = await this.#options.store.getKeyset()
    const inputs = new Map<ServiceKeyPurpose, KeyInput[]>(KEY_PURPOSES.map((p) => [p, []]))
    for (const record of keyset.keys) {
      const list = inputs.get(record.purpose as ServiceKeyPurpose)
      const masterKeys = this.#options.previousMasterKey === undefined ? [this.#options.masterKey] : [this.#options.masterKey, this.#options.previousMasterKey]
      if (list !== undefined) list.push(keyInputOf(masterKeys, record))
    }
    const access = inputs.get('access') ?? []
    const refresh = inputs.get('refresh') ?? []
    // Build both before swapping either, so a bad key set changes nothing.
    if (this.#access === undefined || this.#refresh === undefined) {
      const a = Keyring.fromKeys(access, { expiresIn: this.#options.accessTokenTtl })
      const r = Keyring.fromKeys(refresh, { expiresIn: this.#options.refreshTokenTtl })
      this.#access = a
      this.#refresh = r
    } else {
      Keyring.fromKeys(access)
      Keyring.fromKeys(refresh)
      this.#access.update(access)
      this.#refresh.update(refresh)
    }
    const changed = keyset.version !== this.#version
    this.#version = keyset.version
    if (changed) {
      this.#options.log.info({ keysetVersion: keyset.version }, 'key set loaded')
      this.#options.onLoad?.(keyset.version)
    }
  }
}
