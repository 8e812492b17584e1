/**
 * The env-file side of rotate, finalize, rollback and status: read the file, plan with
 * the core rules, write atomically with an audit row in the store beside the file
 * (see env-audit.ts), report without a secret.
 */
import { createSecretKey } from 'node:crypto'
import { deriveKid } from '../core/kid.ts'
import { envLayout, finalizeSafeAt, inGrace, type EnvLayout, type EnvPlan, type EnvSecret } from '../core/env-rotation.ts'
import { generateSecret } from '../core/secret.ts'
import { applyEnvChange, parseEnv, readEnvFile, updateEnvFile } from '../service/env-file.ts'
import { CliExit, EXIT, operatorOf, type CliIo, type GlobalOptions } from './context.ts'
import { auditedEnvChange, type EnvAuditResult } from './env-audit.ts'

/** Maps `--secret` to a secret of the file; other names belong to managed mode. */
export function envSecretOf(name: string | undefined): EnvSecret {
  if (name === undefined || name === 'jwt' || name === 'JWT_SECRET') return 'jwt'
  if (name === 'access' || name === 'refresh') return name
  throw new CliExit(EXIT.USAGE, `--secret ${name} is not an env-file JWT secret: use access or refresh, or leave it out for JWT_SECRET`)
}

const kidOf = (secret: string | undefined): string | undefined => (secret === undefined || secret === '' ? undefined : deriveKid(createSecretKey(Buffer.from(secret, 'utf8'))))

/** What status shows of one secret in a file: kids and dates, never values. */
export function describeEnvSecret(vars: Record<string, string>, layout: EnvLayout): Record<string, unknown> {
  const grace = inGrace(vars, layout)
  const signer = layout.convention === 'staged' && !grace ? vars.JWT_SECRET_CURRENT : vars[layout.signVar]
  return {
    secret: layout.signVar,
    convention: layout.convention === 'staged' ? 'JWT_SECRET_CURRENT/JWT_SECRET_NEW' : `${layout.signVar}/${layout.verifyVar}`,
    phase: signer === undefined ? 'no key' : grace ? 'grace' : 'steady',
    keys: [
      ...(signer === undefined ? [] : [{ kid: kidOf(signer), state: 'current', variable: grace || layout.convention === 'pair' ? layout.signVar : 'JWT_SECRET_CURRENT' }]),
      ...(grace ? [{ kid: kidOf(vars[layout.verifyVar]), state: 'previous', variable: layout.verifyVar }] : []),
    ],
    rotatedAt: vars[layout.dateVar] ?? null,
    finalizeSafeAt: grace ? finalizeSafeAt(vars, layout)?.toISOString() ?? null : null,
  }
}

/** The inventory and audit name of a file's secret: the family, whatever the convention. */
const SECRET_NAMES: Readonly<Record<EnvSecret, string>> = { jwt: 'JWT_SECRET', access: 'JWT_ACCESS_SECRET', refresh: 'JWT_REFRESH_SECRET' }

const kidIn = (state: Record<string, unknown>, keyState: string): string =>
  (state.keys as { kid?: string, state: string }[]).find((k) => k.state === keyState)?.kid ?? 'none'

/** `signing A -> B, previous C -> none`: which keys changed, by kid, never by value. */
function kidNotes(before: Record<string, unknown>, after: Record<string, unknown>): string {
  return `signing kid ${kidIn(before, 'current')} -> ${kidIn(after, 'current')}, previous kid ${kidIn(before, 'previous')} -> ${kidIn(after, 'previous')}`
}

/**
 * What the inventory learns from `method`: a rotation takes effect now; a finalize tells of
 * a rotation at the date the file recorded, which only matters to an inventory that has none
 * (the rotation was done before rekey kept one); a rollback is not a rotation.
 */
function rotationOf(method: string, before: Readonly<Record<string, string>>, layout: EnvLayout, now: number): { rotatedAt: number | null, onlyIfUnknown?: boolean } {
  if (method.startsWith('rotate')) return { rotatedAt: now }
  if (method.startsWith('finalize')) {
    const at = Date.parse(before[layout.dateVar] ?? '')
    return { rotatedAt: Number.isNaN(at) ? now : at, onlyIfUnknown: true }
  }
  return { rotatedAt: null }
}

/** Runs one planned change on the env file, with its audit row, and prints what happened. */
export async function applyEnvPlan(
  io: CliIo,
  globals: GlobalOptions,
  secretName: string | undefined,
  plan: (vars: Record<string, string>, layout: EnvLayout, fresh: () => string) => EnvPlan | undefined,
): Promise<void> {
  const file = globals.envFile as string
  const { text, env, exists } = await readEnvFile(file)
  if (!exists) throw new CliExit(EXIT.USAGE, `${file} does not exist`)
  const layout = envLayout(env, envSecretOf(secretName))
  const change = plan(env, layout, () => generateSecret())
  if (change === undefined) {
    io.stdout(globals.json === true ? `${JSON.stringify({ changed: false, ...describeEnvSecret(env, layout) })}\n` : `nothing to do: no old key of ${layout.signVar} is in its grace window\n`)
    return
  }
  // The kids before and after go in the audit notes: they name the keys without revealing them.
  const predicted = parseEnv(applyEnvChange(text, { set: change.set, remove: change.remove }))
  const kids = kidNotes(describeEnvSecret(env, layout), describeEnvSecret(predicted, envLayout(predicted, layout.secret)))
  let after: Record<string, string> = predicted
  const audit = await auditedEnvChange(io, globals, { ...env, ...predicted }, {
    secret: SECRET_NAMES[layout.secret],
    method: change.method,
    notes: `${change.notes}; ${kids}`,
    ...rotationOf(change.method, env, layout, Date.now()),
    kind: 'jwt',
  }, { path: file, oldText: text }, async () => {
    after = (await updateEnvFile(file, { set: change.set, remove: change.remove })).after
  })
  const state = describeEnvSecret(after, envLayout(after, layout.secret))
  const report = { changed: true, file, method: change.method, notes: change.notes, operator: operatorOf(globals), ...state, audit }
  if (globals.json === true) {
    io.stdout(`${JSON.stringify(report)}\n`)
    return
  }
  io.stdout(`${change.method}: ${change.notes}\n`)
  for (const key of state.keys as { kid: string, state: string, variable: string }[]) io.stdout(`  ${key.state.padEnd(8)} ${key.kid}  (${key.variable})\n`)
  if (state.finalizeSafeAt !== null) io.stdout(`  finalize is safe from ${String(state.finalizeSafeAt)}\n`)
  io.stdout(`  ${file} rewritten (0600); the old file is ${file}.bak\n`)
  io.stdout(`  audit row ${audit.seq} in ${audit.store}\n`)
}

/** Writes a new secret into `--var` of the env file, with its audit row; nothing secret is returned. */
export async function applyEnvGen(io: CliIo, globals: GlobalOptions, variable: string, secret: string, description: string): Promise<EnvAuditResult> {
  const file = globals.envFile as string
  const { text, env, exists } = await readEnvFile(file)
  const old = env[variable]
  return auditedEnvChange(io, globals, { ...env, [variable]: secret }, {
    secret: variable,
    method: 'gen',
    notes: `${description}; kid ${kidOf(old) ?? 'none'} -> ${kidOf(secret) ?? 'none'}`,
    rotatedAt: Date.now(),
  }, { path: file, oldText: exists ? text : null }, async () => {
    await updateEnvFile(file, { set: { [variable]: secret } })
  })
}
