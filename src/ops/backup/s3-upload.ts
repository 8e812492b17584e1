/**
 * Optional upload of an archive to S3 with server-side encryption. `@aws-sdk/client-s3` is not
 * a dependency of rekey: it is loaded only when `--s3` is given, and its absence is a clear
 * usage error. Region and credentials come from the SDK's usual sources (AWS_REGION,
 * AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN, AWS_PROFILE, instance roles);
 * AWS_ENDPOINT_URL_S3 points it at an S3-compatible server.
 */
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
  const client = new sdk.S3Client({})
  try {
    await client.send(new sdk.PutObjectCommand({
      Bucket: target.bucket,
      Key: key,
      Body: createReadStream(file),
      ContentLength: (await fs.stat(file)).size,
      ContentType: 'application/octet-stream',
      ...(kmsKeyId === undefined ? { ServerSideEncryption: 'AES256' } : { ServerSideEncryption: 'aws:kms', SSEKMSKeyId: kmsKeyId }),
    }))
  } finally {
    client.destroy()
  }
  return `s3://${target.bucket}/${key}`
}
