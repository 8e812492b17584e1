/**
 * Optional upload of an archive to S3 with server-side encryption. `@aws-sdk/client-s3` is an
 * optional dependency of rekey: it is loaded only when `--s3` is given, and its absence is a
 * clear usage error. Region and credentials come from the SDK's usual sources (AWS_REGION,
 * AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN, AWS_PROFILE, instance roles);
 * AWS_ENDPOINT_URL_S3 points it at an S3-compatible server.
 */
import { createHash } from 'node:crypto'
import { createReadStream, promises as fs } from 'node:fs'
import path from 'node:path'
import { RekeyError } from '../../core/errors.ts'

/** Where to upload: `s3://bucket/prefix`. */
export interface S3Target {
  readonly bucket: string
  readonly prefix: string
}

/** Parses `s3://bucket/prefix`; ERR_CONFIG when it is not one. */
export function parseS3Url(url: string): S3Target {
  const match = /^s3:\/\/([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:\/(.*))?$/.exec(url)
  if (match === null) throw new RekeyError('ERR_CONFIG', '--s3 must look like s3://bucket/prefix')
  return { bucket: match[1] as string, prefix: (match[2] ?? '').replace(/\/+$/, '') }
}

/** Archives up to this size are uploaded from memory, so the SDK can retry them. */
const IN_MEMORY_MAX = 256 * 1024 * 1024

// The subset of the SDK rekey uses, typed here so the SDK stays optional.
interface S3Module {
  S3Client: new (config: object) => { send(command: unknown): Promise<unknown>, destroy(): void }
  PutObjectCommand: new (input: object) => unknown
}

/** Uploads `file` under the target's prefix with SSE (AES256, or aws:kms with `kmsKeyId`); returns the object URL. */
export async function uploadToS3(file: string, target: S3Target, kmsKeyId?: string): Promise<string> {
  let sdk: S3Module
  try {
    const name = '@aws-sdk/client-s3'
    sdk = await import(name) as S3Module
  } catch {
    throw new RekeyError('ERR_CONFIG', 'install @aws-sdk/client-s3 to upload (npm install @aws-sdk/client-s3)')
  }
  const key = target.prefix === '' ? path.basename(file) : `${target.prefix}/${path.basename(file)}`
  const url = `s3://${target.bucket}/${key}`
  const size = (await fs.stat(file)).size
  const client = new sdk.S3Client({})
  try {
    await client.send(new sdk.PutObjectCommand({
      Bucket: target.bucket,
      Key: key,
      // In memory the SDK can retry a failed attempt (a stream is sent once); past the limit it streams.
      Body: size <= IN_MEMORY_MAX ? await fs.readFile(file) : createReadStream(file),
      ContentLength: size,
      // Given up front, S3 checks the whole object against it, and the SDK sends the body as
      // is (no aws-chunked encoding with a trailing checksum, which not every S3-compatible
      // server decodes).
      ChecksumSHA256: await sha256Base64(file),
      ContentType: 'application/octet-stream',
      ...(kmsKeyId === undefined ? { ServerSideEncryption: 'AES256' } : { ServerSideEncryption: 'aws:kms', SSEKMSKeyId: kmsKeyId }),
    }))
  } catch (err) {
    throw uploadError(err, url, file)
  } finally {
    client.destroy()
  }
  return url
}

async function sha256Base64(file: string): Promise<string> {
  const hash = createHash('sha256')
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer)
  return hash.digest('base64')
}

/**
 * One line naming the object, the SDK's error name and message, and where the archive stays:
 * missing credentials or region are configuration (ERR_CONFIG, exit 2), anything the service
 * or the network answers is a failed upload (exit 1). SDK messages carry no credentials.
 */
function uploadError(err: unknown, url: string, file: string): Error {
  const name = err instanceof Error ? err.name : 'Error'
  const message = err instanceof Error ? err.message : String(err)
  const text = `the upload to ${url} failed (${name === 'Error' ? '' : `${name}: `}${message}); the archive is kept at ${file}`
  if (name === 'CredentialsProviderError' || /region is missing/i.test(message)) {
    return new RekeyError('ERR_CONFIG', `${text}. Set AWS_REGION and credentials (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE or a role)`)
  }
  // Refused by the service or the network, not a bug of rekey: the CLI prints ERR_REFUSED, exit 1.
  return Object.assign(new Error(text, { cause: err }), { code: 'ERR_REFUSED' })
}
