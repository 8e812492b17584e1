/**
 * A key row's purpose edited behind rekey's back (a data key relabelled `access`, a signing key
 * relabelled `data`) never opens as the other kind: the data keys are sealed under the data-key
 * access key, the signing keys under the master key, both bound to their purpose. The refusal
 * names the edit (ERR_UNSAFE, the purpose rekey sealed it with), not a "wrong master key", and
 * `rekey status` reports it as such with a clean exit.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import path from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import { describe, test } from 'node:test'
import { newDataKey } from '../../../src/service/data-keys/managed-data-keys.ts'
import { dataKeyAccessKey, keyInputOf, newManagedKey, openDataKeyMaterial, openKeyMaterial } from '../../../src/service/keys/keys.ts'
import type { KeyRecord } from '../../../src/store/types.ts'
import { runBin, tempDir } from '../../cli/helpers.ts'

const master = randomBytes(32)
const record = (k: ReturnType<typeof newManagedKey>, purpose: string): KeyRecord => ({ ...k, purpose, demotedAt: null, retireAfter: null, revokedAt: null, revokeReason: null } as unknown as KeyRecord)

describe('a key row whose purpose was edited outside rekey', () => {
  test('a data key relabelled access or refresh: refused as an edit, not taken for a signing key', () => {
    const data = newDataKey(master, Date.now(), 'current')
    for (const purpose of ['access', 'refresh']) {
      assert.throws(() => keyInputOf(master, record(data, purpose)), { code: 'ERR_UNSAFE', message: new RegExp(`${data.kid} is stored with purpose ${purpose} but rekey sealed it with purpose data: its row was changed outside rekey`) })
    }
  })

  test('a signing key relabelled data: refused as an edit with the master key; opens nothing with the data-key access key', () => {
    const access = newManagedKey(master, 'access', Date.now())
    assert.throws(() => openKeyMaterial([master], record(access, 'data')), { code: 'ERR_UNSAFE', message: /is stored with purpose data but rekey sealed it with purpose access/ })
    assert.throws(() => openDataKeyMaterial([dataKeyAccessKey(master)], record(access, 'data')), { code: 'ERR_CONFIG' })
  })

  test('a row that opens under no purpose is still the wrong master key (ERR_CONFIG)', () => {
    const data = newDataKey(randomBytes(32), Date.now(), 'current')
    assert.throws(() => keyInputOf(master, record(data, 'access')), { code: 'ERR_CONFIG' })
  })

  test('rekey status on a store whose data key was relabelled access: ERR_UNSAFE naming the edit, no stack', async (t) => {
    const dir = tempDir(t)
    const store = path.join(dir, 'rekey.db')
    const env = { REKEY_STORE: store, REKEY_MASTER_KEY: master.toString('base64') }
    assert.equal((await runBin(['rotate', '--secret', 'ENCRYPTION_KEY'], { cwd: dir, env })).code, 0)
    const db = new DatabaseSync(store)
    db.exec("UPDATE keys SET purpose = 'access' WHERE purpose = 'data'")
    db.close()
    const r = await runBin(['status'], { cwd: dir, env })
    assert.equal(r.code, 1, r.stderr)
    assert.match(r.stderr, /ERR_UNSAFE: the key \S+ is stored with purpose access but rekey sealed it with purpose data: its row was changed outside rekey/)
    assert.doesNotMatch(r.stderr, /\n\s+at /)
  })
})
