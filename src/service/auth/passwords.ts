/**
 * Password hashing: argon2id through @node-rs/argon2, OWASP parameters by default
 * (19456 KiB, 2 iterations, 1 lane).
 */
import { randomBytes } from 'node:crypto'
import { hash, verify, type Algorithm } from '@node-rs/argon2'

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

/** Hashes and verifies passwords; verifies against a dummy hash for unknown users so timing matches. */
export class PasswordHasher {
  readonly #params: Argon2Params
  #dummy: Promise<string> | undefined

  constructor(params: Argon2Params) {
    this.#params = Object.freeze({ ...params })
  }

  hash(password: string): Promise<string> {
    return hash(password, { algorithm: ARGON2ID, ...this.#params })
  }

  /** True when `password` matches the PHC string `phc`; false also for an unparseable hash. */
  async verify(phc: string, password: string): Promise<boolean> {
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
