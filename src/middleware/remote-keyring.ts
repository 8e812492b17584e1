/**
 * The middleware's side of remote keyrings: `jwksUrl` builds a {@link Keyring.fromJwks} at the
 * first request (one fetch shared by concurrent requests; retried on a later request after a
 * failure), and a token naming an unknown kid waits for the keyring's refetch (cooldown, single
 * flight) and is verified once more, as jose's `createRemoteJWKSet` does.
 */
import type { VerifyOptions } from '../core/claims.ts'
import { isRekeyError } from '../core/errors.ts'
import { Keyring, type JwksKeyringOptions, type VerifyResult } from '../core/keyring.ts'

type Verify = (token: string) => VerifyResult | Promise<VerifyResult>

/** Wraps a keyring's verifier: on ERR_KEY_UNKNOWN from a remote keyring, waits for its refetch and tries once more. */
export function retryUnknownKid(keyring: Keyring, verify: (token: string) => VerifyResult): Verify {
  // Local keyrings (and keyrings of another copy of the package) keep the plain synchronous path.
  if (typeof keyring.refreshForUnknownKid !== 'function' || keyring.remote === null) return verify
  return (token) => {
    try {
      return verify(token)
    } catch (err) {
      if (!isRekeyError(err) || err.code !== 'ERR_KEY_UNKNOWN') throw err
      return keyring.refreshForUnknownKid().then((changed) => {
        if (!changed) throw err
        return verify(token)
      })
    }
  }
}

/** A verify function over a remote keyring fetched at the first call. Options are checked now. */
export function remoteKeyring(url: string | URL, options: Pick<JwksKeyringOptions, 'cooldown' | 'usage'>, verifyOptions: VerifyOptions): Verify {
  try {
    const parsed = new URL(url)
    if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') throw new TypeError('bad protocol')
  } catch {
    throw new TypeError('jwksUrl must be an http:// or https:// URL')
  }
  let ready: Verify | null = null
  let loading: Promise<Verify> | null = null
  const load = (): Promise<Verify> => {
    loading ??= Keyring.fromJwks(url, { ...options, ...verifyOptions }).then((keyring) => {
      ready = retryUnknownKid(keyring, keyring.verifier())
      return ready
    }, (err: unknown) => {
      loading = null // the next request tries again
      throw err
    })
    return loading
  }
  return (token) => {
    if (ready !== null) return ready(token)
    return load().then((verify) => verify(token))
  }
}
