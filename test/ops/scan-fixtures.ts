/**
 * Real git repositories for the scan tests, made in temp directories. Secrets are assembled
 * at run time so this file itself holds none a scanner (or a push protection) would flag.
 */
import { execFileSync } from 'node:child_process'
import { generateKeyPairSync, randomBytes } from 'node:crypto'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'

export function git(cwd: string, ...args: string[]): string {
  return execFileSync('git', args, {
    cwd,
    encoding: 'utf8',
    env: { ...process.env, GIT_AUTHOR_NAME: 't', GIT_AUTHOR_EMAIL: 't@example.test', GIT_COMMITTER_NAME: 't', GIT_COMMITTER_EMAIL: 't@example.test', GIT_CONFIG_NOSYSTEM: '1', HOME: cwd },
  })
}

/** A temp directory removed after the test run. */
export function tempDir(t: { after: (fn: () => void) => void }, prefix = 'rekey-scan-'): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

export function write(root: string, file: string, text: string): void {
  mkdirSync(path.dirname(path.join(root, file)), { recursive: true })
  writeFileSync(path.join(root, file), text)
}

export function commitAll(root: string, message: string): string {
  git(root, 'add', '-A')
  git(root, 'commit', '-q', '--no-gpg-sign', '-m', message)
  return git(root, 'rev-parse', 'HEAD').trim()
}

/** The secrets planted in the fixture repository, to check no output ever holds one. */
export interface Planted {
  readonly awsSecret: string
  readonly privateKey: string
  readonly postgresPassword: string
  readonly githubToken: string
  readonly slackToken: string
  readonly liveJwtSecret: string
}

/**
 * A repository with: an AWS secret key, a private key, a PostgreSQL URL with a password and a
 * GitHub token in the working tree; a Slack token added then removed (history only); a
 * tracked .env (and a .env.example, which is fine) holding the live JWT secret, which also
 * appears in src/keys.js. Returns the root, the planted values and the removed commit.
 */
export function leakyRepo(root: string): { planted: Planted, slackCommit: string } {
  const planted: Planted = {
    awsSecret: ['k9Xq2Lr7Tz4W', 'v1Np8Bm3Hc6J', 'd5Fg0Sa/YeUiOo+P'].join(''),
    privateKey: generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ type: 'pkcs1', format: 'pem' }).toString(),
    postgresPassword: ['s3cr3t', 'Passw0rd', 'Zq'].join(''),
    githubToken: ['gh', 'p_', 'wWPw5k4aXcaT4fNP0Ucn', 'ZwJUVFk6LO0pINUx'].join(''),
    slackToken: ['xo', 'xb-', '1234567890-1234567890123-', 'aBcDeFgHiJkLmNoPqRsTuVwX'].join(''),
    liveJwtSecret: randomBytes(32).toString('hex'),
  }
  git(root, 'init', '-q', '-b', 'main')
  write(root, 'README.md', '# demo\n')
  write(root, '.gitignore', 'ignored.txt\nnode_modules/\n')
  write(root, 'config/aws.js', `module.exports = {\n  region: 'eu-west-1',\n  AWS_SECRET_ACCESS_KEY: "${planted.awsSecret}",\n}\n`)
  write(root, 'keys/id_rsa.pem', planted.privateKey)
  write(root, 'config/db.txt', `# database\nDATABASE_URL=postgres://app:${planted.postgresPassword}@db.example.com:5432/app\n`)
  commitAll(root, 'first')
  write(root, 'scripts/deploy.sh', `#!/bin/sh\nexport GITHUB_TOKEN=${planted.githubToken}\n`)
  write(root, 'notes.txt', `slack: ${planted.slackToken}\n`)
  const slackCommit = commitAll(root, 'second')
  rmSync(path.join(root, 'notes.txt'))
  commitAll(root, 'remove the slack token')
  write(root, '.env', `PORT=3000\nJWT_SECRET=${planted.liveJwtSecret}\n`)
  write(root, '.env.example', 'PORT=3000\nJWT_SECRET=\n')
  write(root, 'src/keys.js', `export const signingKey = '${planted.liveJwtSecret}'\n`)
  commitAll(root, 'env')
  // Ignored and node_modules files are not scanned.
  write(root, 'ignored.txt', `slack: ${planted.slackToken}\n`)
  write(root, 'node_modules/x/index.js', `const t = '${planted.slackToken}'\n`)
  return { planted, slackCommit }
}

/** The values no report may contain, each cut after its first four characters. */
export function secretTails(planted: Planted): string[] {
  const body = planted.privateKey.split('\n')[1] ?? ''
  return [planted.awsSecret, planted.postgresPassword, planted.githubToken, planted.slackToken, planted.liveJwtSecret, body].map((s) => s.slice(4))
}
