/**
 * `Cipher.fromStore` says which key did not open the data keys: REKEY_DATA_KEY_ACCESS (not "this
 * master key", which the application does not hold), or the master key it fell back to; and it
 * refuses the master key given as REKEY_DATA_KEY_ACCESS by name: it would open the data keys
 * through the derivation, but an application must never hold the master key.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import path from 'node:path'
import { describe, it } from 'node:test'
import { Cipher } from '../../../src/crypt.ts'
import { dataKeyAccessKey } from '../../../src/service/keys/keys.ts'
import { runBin, tempDir } from '../../cli/helpers.ts'

describe('Cipher.fromStore names the key that does not open the data keys', () => {
  it('a wrong access key, the master key as access key, a wrong master key; the right access key opens', async (t) => {
    const dir = tempDir(t)
    const store = path.join(dir, 'rekey.db')
    const master = randomBytes(32)
    assert.equal((await runBin(['rotate', '--secret', 'ENCRYPTION_KEY'], { cwd: dir, env: { REKEY_STORE: store, REKEY_MASTER_KEY: master.toString('base64') } })).code, 0)
    const other = randomBytes(32).toString('base64')

    await assert.rejects(Cipher.fromStore(store, { env: { REKEY_DATA_KEY_ACCESS: other } }), {
      code: 'ERR_CONFIG', message: /^the data keys of .*rekey\.db do not open with REKEY_DATA_KEY_ACCESS: set it to what rekey gen --data-key-access prints/,
    })
    await assert.rejects(Cipher.fromStore(store, { env: { REKEY_DATA_KEY_ACCESS: other, REKEY_DATA_KEY_ACCESS_PREV: randomBytes(32).toString('base64') } }), {
      code: 'ERR_CONFIG', message: /do not open with REKEY_DATA_KEY_ACCESS or REKEY_DATA_KEY_ACCESS_PREV/,
    })
    await assert.rejects(Cipher.fromStore(store, { env: { REKEY_DATA_KEY_ACCESS: master.toString('base64') } }), {
      code: 'ERR_CONFIG', message: /^REKEY_DATA_KEY_ACCESS holds the master key, not the data-key access key: an application never holds the master key/,
    })
    await assert.rejects(Cipher.fromStore(store, { env: { REKEY_MASTER_KEY: other } }), {
      code: 'ERR_CONFIG', message: /^the data keys of .* do not open with this master key \(REKEY_MASTER_KEY/,
    })
    const cipher = await Cipher.fromStore(store, { env: { REKEY_DATA_KEY_ACCESS: dataKeyAccessKey(master).toString('base64') } })
    assert.equal(cipher.decrypt(cipher.encrypt('v', { aad: 'r' }), { aad: 'r' }).toString(), 'v')
    await cipher.close()
  })
})
