/** Dashboard test helpers: an admin made the way `rekey admin create` ends (register, then the role). */
import type { Store } from '../../../src/store/store.ts'

/** Registers through the service and promotes to admin in the store. */
export async function createAdmin(base: { request(method: string, url: string, options?: { body?: unknown }): Promise<{ statusCode: number, body: string, json(): unknown }> }, store: Store, email: string, password: string): Promise<string> {
  const reg = await base.request('POST', '/api/auth/register', { body: { email, password } })
  if (reg.statusCode !== 201) throw new Error(`register: ${reg.statusCode} ${reg.body}`)
  const { id } = reg.json() as { id: string }
  if (!await store.setRole(id, 'admin')) throw new Error('setRole failed')
  return id
}

/** The `name=value` of a Set-Cookie header, for sending back. */
export function cookiePair(setCookie: string | string[] | undefined): string {
  const header = Array.isArray(setCookie) ? setCookie[0] : setCookie
  if (header === undefined) throw new Error('no Set-Cookie')
  return header.split(';')[0] as string
}
