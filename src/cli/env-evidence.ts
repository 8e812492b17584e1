/**
 * Finalize on evidence in env-file mode: apps that verify with `Keyring.fromEnv(process.env,
 * { usage: { store, name } })` report per-kid counts to the store beside the env file (the one
 * the audit log uses). The kids of a file's secrets are derived from the secrets, as every
 * app derives them, so the old key's use can be read without anything else.
 */
import { createSecretKey } from 'node:crypto'
import { deriveKid } from '../core/kid.ts'
import { envLayout, inGrace, type EnvPlan } from '../core/env-rotation.ts'
import { RekeyError } from '../core/errors.ts'
import { recentUseMessage } from '../core/usage-evidence.ts'
import { readEnvFile } from '../config/env-file.ts'
import { evidenceRows, finalizeEvidenceOf, type FinalizeEvidence } from '../service/usage/usage-evidence.ts'
import { commandConfig, openForRead, withStore } from './audit-store.ts'
import type { CliIo, GlobalOptions } from './context.ts'
import { envSecretsOf } from './env-mode.ts'

const kidOf = (secret: string): string => deriveKid(createSecretKey(Buffer.from(secret, 'utf8')))

/** The evidence about the file's old key, or `null` when there is no grace window or no store beside the file. */
export async function envFinalizeEvidence(io: CliIo, globals: GlobalOptions, secretName: string | undefined, threshold: number | undefined): Promise<FinalizeEvidence | null> {
  const { env, exists } = await readEnvFile(globals.envFile as string)
  if (!exists) return null
  const keys: Array<{ kid: string, purpose: string, state: 'current' | 'previous', demotedAt: number | null }> = []
  const purposes: string[] = []
  for (const secret of envSecretsOf(secretName, env)) {
    const layout = envLayout(env, secret)
    if (!inGrace(env, layout)) continue
    const signing = env[layout.signVar]
    const old = env[layout.verifyVar]
    if (signing === undefined || old === undefined) continue
    const rotatedAt = Date.parse(env[layout.dateVar] ?? '')
    keys.push(
      { kid: kidOf(signing), purpose: layout.secret, state: 'current', demotedAt: null },
      { kid: kidOf(old), purpose: layout.secret, state: 'previous', demotedAt: Number.isNaN(rotatedAt) ? null : rotatedAt },
    )
    purposes.push(layout.secret)
  }
  if (keys.length === 0) return null
  const store = await openForRead((await commandConfig(io, globals, env)).store)
  if (store === null) return null
  const now = Date.now()
  return withStore(store, async (s) => finalizeEvidenceOf(await evidenceRows(s, now), keys, purposes, now, threshold))
}

/**
 * Wraps the env-file finalize plan with the evidence rules: refused while the old key was
 * used in the last 5 minutes (unless forced); before the time rule when the share rule holds.
 */
export function withEnvEvidence(
  evidence: FinalizeEvidence | null,
  force: boolean,
  threshold: number | undefined,
  plan: (force: boolean) => EnvPlan | undefined,
): EnvPlan | undefined {
  const byShare = evidence !== null && evidence.shareSatisfied && !force
  const use = evidence?.recentUse
  let result: EnvPlan | undefined
  try {
    result = plan(force || byShare)
  } catch (err) {
    if (!(err instanceof RekeyError) || err.code !== 'ERR_UNSAFE') throw err
    const extra = [
      ...(use !== undefined && use.total > 0 ? [recentUseMessage(use)] : []),
      ...(threshold === undefined || evidence === null ? [] : evidence.share.map((s) => `--when-share-below: ${s.evidence?.reason ?? 'no evidence'}`)),
    ]
    throw extra.length === 0 ? err : new RekeyError('ERR_UNSAFE', `${err.message}; ${extra.join('; ')}`)
  }
  if (result === undefined) return undefined
  if (!force && !byShare && use !== undefined && use.total > 0) {
    throw new RekeyError('ERR_UNSAFE', `finalize refused: ${recentUseMessage(use)} (wait until no app uses it, or use --when-share-below P% or --force)`)
  }
  if (byShare) {
    const reason = evidence.share.map((s) => s.evidence?.reason).join('; ')
    return { ...result, method: 'finalize --when-share-below', notes: `${reason}; cut ${use?.total ?? 0} token(s) verified in the last 5 min` }
  }
  if (force && use !== undefined && use.total > 0) return { ...result, notes: `${result.notes}; forced while in use: ${recentUseMessage(use)}` }
  return result
}
