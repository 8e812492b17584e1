/**
 * `rekey backup --s3` against a real S3-compatible server on 127.0.0.1: s3rver (a devDependency),
 * started in-process on a free port with its files in a temp dir. The CLI talks to it through the
 * real `@aws-sdk/client-s3` over HTTP, pointed there by `AWS_ENDPOINT_URL_S3`.
 */
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import type { IncomingHttpHeaders, Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { createRequire } from 'node:module'
import os from 'node:os'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'
import { CreateBucketCommand, GetObjectCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3'
import { generateX25519Identity, identityToRecipient } from 'age-encryption'
import { filledStore, PASSPHRASE, run } from './backup-fixtures.ts'

// s3rver ships no types: the part used here.
interface S3rverServer {
  run(): Promise<AddressInfo>
  close(): Promise<void>
  httpServer: Server
}
const S3rver = createRequire(import.meta.url)('s3rver') as new (options: object) => S3rverServer

// s3rver's one account; it checks the SigV4 signature made with it.
const ACCESS_KEY_ID = 'S3RVER'
const SECRET_ACCESS_KEY = 'S3RVER'
const BUCKET = 'rekey-backups'

const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex')

describe('rekey backup --s3 (s3rver on 127.0.0.1)', () => {
  let server: S3rverServer
  let endpoint: string
  let client: S3Client
  let s3Dir: string
  /** Every PUT the server received: path and headers, as they came over the wire. */
  const puts: Array<{ url: string, headers: IncomingHttpHeaders }> = []
  const saved: Record<string, string | undefined> = {}
  const awsEnv: Record<string, string> = {
    AWS_REGION: 'us-east-1',
    AWS_ACCESS_KEY_ID: ACCESS_KEY_ID,
    AWS_SECRET_ACCESS_KEY: SECRET_ACCESS_KEY,
    AWS_EC2_METADATA_DISABLED: 'true',
  }

  before(async () => {
    s3Dir = mkdtempSync(path.join(os.tmpdir(), 'rekey-s3rver-'))
    server = new S3rver({ address: '127.0.0.1', port: 0, silent: true, directory: s3Dir })
    const { port } = await server.run()
    server.httpServer.prependListener('request', (req: { method?: string, url?: string, headers: IncomingHttpHeaders }) => {
      if (req.method === 'PUT') puts.push({ url: req.url ?? '', headers: req.headers })
    })
    endpoint = `http://127.0.0.1:${port}`
    // The SDK reads region, credentials and endpoint from the process environment, as it would
    // for an operator; restored afterwards.
    for (const [name, value] of Object.entries({ ...awsEnv, AWS_ENDPOINT_URL_S3: endpoint })) {
      saved[name] = process.env[name]
      process.env[name] = value
    }
    for (const name of ['AWS_PROFILE', 'AWS_SESSION_TOKEN', 'AWS_ENDPOINT_URL']) {
      saved[name] = process.env[name]
      delete process.env[name]
    }
    client = new S3Client({ region: 'us-east-1', endpoint, forcePathStyle: true, credentials: { accessKeyId: ACCESS_KEY_ID, secretAccessKey: SECRET_ACCESS_KEY } })
    await client.send(new CreateBucketCommand({ Bucket: BUCKET }))
  })

  after(async () => {
    client?.destroy()
    await server?.close()
    rmSync(s3Dir, { recursive: true, force: true })
    for (const [name, value] of Object.entries(saved)) {
      if (value === undefined) delete process.env[name]
      else process.env[name] = value
    }
  })

  async function download(key: string): Promise<Uint8Array> {
    const object = await client.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }))
    assert.ok(object.Body !== undefined)
    return object.Body.transformToByteArray()
  }

  test('uploads the archive under the prefix, byte for byte, asking for SSE AES256; nothing secret printed', async (t) => {
    const { dir, storePath } = await filledStore(t, 3)
    puts.length = 0
    const made = await run(['--store', storePath, '--json', 'backup', '--out', path.join(dir, 'out'), '--s3', `s3://${BUCKET}/nightly/db1/`], { REKEY_BACKUP_PASSPHRASE: PASSPHRASE })
    assert.equal(made.code, 0, made.stderr)
    const report = JSON.parse(made.stdout) as { file: string, uploaded: string }
    const name = path.basename(report.file)
    assert.match(name, /^rekey-backup-\d{8}T\d{6}Z\.tgz\.age$/)
    assert.equal(report.uploaded, `s3://${BUCKET}/nightly/db1/${name}`)

    const listed = await client.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: 'nightly/db1/' }))
    assert.deepEqual(listed.Contents?.map((o) => o.Key), [`nightly/db1/${name}`])
    assert.equal(sha256(await download(`nightly/db1/${name}`)), sha256(readFileSync(report.file)), 'the stored object is the archive, byte for byte')

    assert.equal(puts.length, 1)
    assert.equal(puts[0]?.url.split('?')[0], `/${BUCKET}/nightly/db1/${name}`)
    assert.equal(puts[0]?.headers['x-amz-server-side-encryption'], 'AES256')
    assert.equal(puts[0]?.headers['x-amz-server-side-encryption-aws-kms-key-id'], undefined)
    assert.equal(puts[0]?.headers['x-amz-checksum-sha256'], createHash('sha256').update(readFileSync(report.file)).digest('base64'), 'S3 can check the object end to end')

    for (const out of [made.stdout, made.stderr]) {
      assert.ok(!out.includes(PASSPHRASE), 'the passphrase is not printed')
      assert.ok(!out.includes(SECRET_ACCESS_KEY) && !out.includes(ACCESS_KEY_ID), 'the AWS keys are not printed')
    }
  })

  test('--kms-key-id asks for aws:kms with that key (text output); no prefix puts it at the bucket root', async (t) => {
    const { dir, storePath } = await filledStore(t, 1)
    puts.length = 0
    const recipient = await identityToRecipient(await generateX25519Identity())
    const kmsKeyId = 'arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab'
    const made = await run(['--store', storePath, 'backup', '--out', path.join(dir, 'out'), '--recipient', recipient, '--s3', `s3://${BUCKET}`, '--kms-key-id', kmsKeyId])
    assert.equal(made.code, 0, made.stderr)
    const uploaded = /uploaded to s3:\/\/rekey-backups\/(rekey-backup-\d{8}T\d{6}Z\.tgz\.age)\n/.exec(made.stdout)
    assert.ok(uploaded !== null, made.stdout)
    const key = uploaded[1] as string
    assert.equal(sha256(await download(key)), sha256(readFileSync(path.join(dir, 'out', key))))
    assert.equal(puts.length, 1)
    assert.equal(puts[0]?.headers['x-amz-server-side-encryption'], 'aws:kms')
    assert.equal(puts[0]?.headers['x-amz-server-side-encryption-aws-kms-key-id'], kmsKeyId)
    for (const out of [made.stdout, made.stderr]) assert.ok(!out.includes(SECRET_ACCESS_KEY))
  })

  test('a bucket that does not exist: the upload fails with a non-zero exit, the local archive is kept', async (t) => {
    const { dir, storePath } = await filledStore(t, 1)
    const recipient = await identityToRecipient(await generateX25519Identity())
    const made = await run(['--store', storePath, 'backup', '--out', path.join(dir, 'out'), '--recipient', recipient, '--s3', 's3://no-such-bucket/x'])
    assert.equal(made.code, 1)
    const archive = path.join(dir, 'out', readdirSync(path.join(dir, 'out'))[0] as string)
    assert.equal(made.stderr, `rekey: ERR_REFUSED: the upload to s3://no-such-bucket/x/${path.basename(archive)} failed (NoSuchBucket: The specified bucket does not exist); the archive is kept at ${archive}\n`)
    assert.ok(!made.stderr.includes(SECRET_ACCESS_KEY))
  })

  test('no credentials: ERR_CONFIG, exit 2, naming what to set', async (t) => {
    const { dir, storePath } = await filledStore(t, 1)
    const names = ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_CONFIG_FILE', 'AWS_SHARED_CREDENTIALS_FILE']
    const kept = names.map((n) => process.env[n])
    delete process.env.AWS_ACCESS_KEY_ID
    delete process.env.AWS_SECRET_ACCESS_KEY
    process.env.AWS_CONFIG_FILE = path.join(dir, 'no-config')
    process.env.AWS_SHARED_CREDENTIALS_FILE = path.join(dir, 'no-credentials')
    try {
      const recipient = await identityToRecipient(await generateX25519Identity())
      const made = await run(['--store', storePath, 'backup', '--out', path.join(dir, 'out'), '--recipient', recipient, '--s3', `s3://${BUCKET}/x`])
      assert.equal(made.code, 2, made.stderr)
      assert.match(made.stderr, /^rekey: ERR_CONFIG: the upload to s3:\/\/rekey-backups\/x\/rekey-backup-.* failed \(CredentialsProviderError: .*\); the archive is kept at .*Set AWS_REGION and credentials/)
    } finally {
      names.forEach((n, i) => {
        if (kept[i] === undefined) delete process.env[n]
        else process.env[n] = kept[i]
      })
    }
  })
})
