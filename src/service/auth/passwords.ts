/**
 * Password hashing: argon2id through @node-rs/argon2, OWASP parameters by default
 * (19456 KiB, 2 iterations, 1 lane).
 */
import { randomBytes } from 'node:crypto'
import type { Algorithm } from '@node-rs/argon2'
import { RekeyError } from '../../core/errors.ts'

/** argon2id cost parameters. */
export interface Argon2Params {
  /** KiB. Default 19456. */
  readonly memoryCost: number
  readonly timeCost: number
  readonly parallelism: number
}

/** Password length bounds, in characters. */
export const PASSWORD_MIN = 8
export const PASSWORD_MAX = 1024

// @node-rs/argon2 declares Algorithm as an ambient const enum; its runtime value for argon2id is 2.
const ARGON2ID = 2 as unknown as Algorithm

type Argon2 = typeof import('@node-rs/argon2')
let argon2: Promise<Argon2> | undefined

/**
 * @node-rs/argon2, loaded on first use: its native binary comes as an optional dependency,
 * and an install without optional dependencies (`npm ci --omit=optional`) must still run every
 * command that needs no password, with a clear error for those that do.
 */
function loadArgon2(): Promise<Argon2> {
  argon2 ??= import('@node-rs/argon2').catch(() => {
    argon2 = undefined
    throw new RekeyError('ERR_CONFIG', `password hashing needs @node-rs/argon2's native binary for ${process.platform}-${process.arch}, which is not installed: install rekey without --omit=optional`)
  })
  return argon2
}

/** Hashes and verifies passwords; verifies against a dummy hash for unknown users so timing matches. */
export class PasswordHasher {
  readonly #params: Argon2Params
  #dummy: Promise<string> | undefined

  constructor(params: Argon2Params) {
    this.#params = Object.freeze({ ...params })
  }

  async hash(password: string): Promise<string> {
    const { hash } = await loadArgon2()
    return await hash(password, { algorithm: ARGON2ID, ...this.#params })
  }

  /** True when `password` matches the PHC string `phc`; false also for an unparseable hash. */
  async verify(phc: string, password: string): Promise<boolean> {
    const { verify } = await loadArgon2()
    try {
      return await verify(phc, password)
    } catch {
      return false
    }
  }

  /** Spends the time of one verification, for a login on an unknown email. Always false. */
  async verifyDummy(password: string): Promise<false> {
    this.#dummy ??= this.hash(randomBytes(16).toString('hex'))
    await this.verify(await this.#dummy, password)
    return false
  }

  /** Computes the dummy hash ahead of the first unknown-user login. */
  async warm(): Promise<void> {
    this.#dummy ??= this.hash(randomBytes(16).toString('hex'))
    await this.#dummy
  }
}
