/**
 * The env-file side of rotate, finalize, rollback, emergency and status: read the file
 * (refused unless rekey, Node and dotenv read it alike, each JWT variable assigned once and
 * one convention in use), plan with the core rules, write once atomically with one audit row
 * per secret in the store beside the file (see env-audit.ts), check the file as read back,
 * then report without a secret and send the webhook notices.
 */
import { createSecretKey } from 'node:crypto'
import path from 'node:path'
import { backupsHolding, DEFAULT_ENV_BACKUPS, shredFile } from '../config/env-backups.ts'
import { readEnvFileStrict, updateEnvFile, type EnvChange, type EnvFileRead, type EnvWriteResult } from '../config/env-file.ts'
import { readEnvKeys } from '../core/env.ts'
import { RekeyError } from '../core/errors.ts'
import {
  assertOneConvention, envLayout, finalizeSafeAt, inGrace, MANAGED_ENV_VARS, signingSecret, signingVar, tokenLifetimeOf,
  type EnvConvention, type EnvLayout, type EnvPlan, type EnvSecret, type TokenLifetime,
} from '../core/env-rotation.ts'
import { deriveKid } from '../core/kid.ts'
import { generateSecret } from '../core/secret.ts'
import { CliExit, EXIT, operatorOf, type CliIo, type GlobalOptions } from './context.ts'
import { auditedEnvChange, type EnvAuditEntry, type EnvAuditResult } from './env-audit.ts'
import { envEvents, noticeKindOf, sendEnvNotices, type EnvNoticeKind } from './env-notices.ts'

/** The comment that remembers a file's chosen convention (`--convention current-new`). */
export const CONVENTION_MARKER = '# rekey: convention=current-new (JWT_SECRET_CURRENT/JWT_SECRET_NEW; set by rekey rotate --convention)'

/** Maps `--secret` to the secrets of the file it names; `all`: every JWT secret the file has. */
export function envSecretsOf(name: string | undefined, vars: Readonly<Record<string, string>>): EnvSecret[] {
  if (name === undefined || name === 'jwt' || name === 'JWT_SECRET') return ['jwt']
  if (name === 'access' || name === 'refresh') return [name]
  if (name === 'ENCRYPTION_KEY') return ['data']
  if (name === 'all') {
    const present = presentSecrets(vars)
    if (present.length === 0) throw new CliExit(EXIT.USAGE, 'this file holds no JWT secret to rotate (create one with gen --var JWT_SECRET)')
    return present
  }
  throw new CliExit(EXIT.USAGE, `--secret ${name} is not an env-file JWT secret: use access, refresh or all, or leave it out for JWT_SECRET`)
}

/** The JWT secrets a file holds: the generic one (either convention), the access and refresh ones. */
export function presentSecrets(vars: Readonly<Record<string, string>>): EnvSecret[] {
  const set = (n: string): boolean => (vars[n] ?? '') !== ''
  const out: EnvSecret[] = []
  if (['JWT_SECRET', 'JWT_SECRET_PREV', 'JWT_SECRET_CURRENT', 'JWT_SECRET_NEW'].some(set)) out.push('jwt')
  if (set('JWT_ACCESS_SECRET') || set('JWT_ACCESS_SECRET_PREV')) out.push('access')
  if (set('JWT_REFRESH_SECRET') || set('JWT_REFRESH_SECRET_PREV')) out.push('refresh')
  return out
}

const kidOf = (secret: string | undefined): string | undefined => (secret === undefined || secret === '' ? undefined : deriveKid(createSecretKey(Buffer.from(secret, 'utf8'))))

/** The file, read for a command that acts on its JWT secrets: it must exist and be unambiguous. */
export async function readJwtEnvFile(globals: GlobalOptions): Promise<EnvFileRead & { file: string }> {
  const file = globals.envFile as string
  const read = await readEnvFileStrict(file, MANAGED_ENV_VARS)
  if (!read.exists) throw new CliExit(EXIT.USAGE, `${file} does not exist`)
  assertOneConvention(read.env)
  return { ...read, file }
}

/** The convention of the generic secret: `--convention`, else the file's marker, else none. */
export function conventionOf(read: EnvFileRead, flag: string | undefined): EnvConvention | undefined {
  if (flag !== undefined && flag !== 'pair' && flag !== 'current-new') throw new CliExit(EXIT.USAGE, '--convention must be pair (JWT_SECRET/JWT_SECRET_PREV) or current-new (JWT_SECRET_CURRENT/JWT_SECRET_NEW)')
  if (flag !== undefined) return flag
  return read.doc.lines.includes(CONVENTION_MARKER) ? 'current-new' : undefined
}

/** What status shows of one secret in a file: kids, dates and the token lifetime, never values. */
export function describeEnvSecret(vars: Readonly<Record<string, string>>, layout: EnvLayout, lifetime: TokenLifetime): Record<string, unknown> {
  const grace = inGrace(vars, layout)
  const signer = signingSecret(vars, layout)
  return {
    secret: layout.restVar ?? layout.signVar,
    convention: layout.convention === 'staged' ? 'JWT_SECRET_CURRENT/JWT_SECRET_NEW' : `${layout.signVar}/${layout.verifyVar}`,
    phase: signer === undefined ? 'no key' : grace ? 'grace' : 'steady',
    keys: [
      ...(signer === undefined ? [] : [{ kid: kidOf(signer), state: 'current', variable: signingVar(vars, layout) }]),
      ...(grace ? [{ kid: kidOf(vars[layout.verifyVar]), state: 'previous', variable: layout.verifyVar }] : []),
    ],
    rotatedAt: grace ? vars[layout.dateVar] ?? null : null,
    tokenLifetime: { seconds: lifetime.seconds, source: lifetime.source, assumed: lifetime.assumed },
    finalizeSafeAt: grace ? finalizeSafeAt(vars, layout, lifetime)?.toISOString() ?? null : null,
  }
}

/** `24 h (assumed: ...)`: the lifetime and where it came from. */
export function lifetimeText(lifetime: TokenLifetime): string {
  const s = lifetime.seconds
  const human = s % 86_400 === 0 && s > 172_800 ? `${s / 86_400} d` : s % 3600 === 0 ? `${s / 3600} h` : s % 60 === 0 ? `${s / 60} min` : `${s} s`
  return `${human} (${lifetime.source})`
}

/** The inventory and audit name of a file's secret: the family, whatever the convention. */
const SECRET_NAMES: Readonly<Record<EnvSecret, string>> = { jwt: 'JWT_SECRET', access: 'JWT_ACCESS_SECRET', refresh: 'JWT_REFRESH_SECRET', data: 'ENCRYPTION_KEY' }

const kidIn = (state: Record<string, unknown>, keyState: string): string =>
  (state.keys as { kid?: string, state: string }[]).find((k) => k.state === keyState)?.kid ?? 'none'

/** `signing A -> B, previous C -> none`: which keys changed, by kid, never by value. */
function kidNotes(before: Record<string, unknown>, after: Record<string, unknown>): string {
  return `${before.secret === 'ENCRYPTION_KEY' ? 'encrypting' : 'signing'} kid ${kidIn(before, 'current')} -> ${kidIn(after, 'current')}, previous kid ${kidIn(before, 'previous')} -> ${kidIn(after, 'previous')}`
}

/**
 * What the inventory learns from `method`: a rotation takes effect now; a finalize tells of
 * a rotation at the date the file recorded, which only matters to an inventory that has none
 * (the rotation was done before rekey kept one); a rollback is not a rotation.
 */
function rotationOf(method: string, before: Readonly<Record<string, string>>, layout: EnvLayout, now: number): { rotatedAt: number | null, onlyIfUnknown?: boolean } {
  if (method.startsWith('rotate') || method.startsWith('emergency')) return { rotatedAt: now }
  if (method.startsWith('finalize')) {
    const at = Date.parse(before[layout.dateVar] ?? '')
    return { rotatedAt: Number.isNaN(at) ? now : at, onlyIfUnknown: true }
  }
  return { rotatedAt: null }
}

/** Options every env-file rewrite of JWT secrets takes. */
export interface EnvPlanOptions {
  /** `--token-lifetime`. */
  readonly tokenLifetime?: string
  /** `--convention`. */
  readonly convention?: string
  /** `--shred-backups`: remove the backups that still hold a dropped secret. */
  readonly shredBackups?: boolean
  /** The notice to send once written; default from the method. */
  readonly notice?: EnvNoticeKind
  /** Lines printed after the report (what the operator must still do). */
  readonly followUp?: readonly string[]
  /** Extra text for the audit notes (an emergency's reason). */
  readonly reason?: string
}

/** A planner: what to change for one secret, or `undefined` for nothing to do. */
export type EnvPlanner = (vars: Readonly<Record<string, string>>, layout: EnvLayout, fresh: () => string, lifetime: TokenLifetime) => EnvPlan | undefined

/** The number of backup generations: `REKEY_ENV_BACKUPS`, default 5. */
function backupsOf(io: CliIo): number {
  const raw = io.env.REKEY_ENV_BACKUPS
  if (raw === undefined || raw === '') return DEFAULT_ENV_BACKUPS
  const n = Number(raw)
  if (!Number.isInteger(n) || n < 1 || n > 100) throw new CliExit(EXIT.USAGE, 'REKEY_ENV_BACKUPS must be a whole number from 1 to 100')
  return n
}

/**
 * One secret of the file a command changes: its variables (a JWT secret, or any pair such as
 * `ENCRYPTION_KEY` / `ENCRYPTION_KEY_PREV` from {@link pairLayout}), its audit and inventory
 * name and kind, and how to find its variables again after the change.
 */
export interface EnvTarget {
  readonly name: string
  readonly kind: string
  readonly layout: EnvLayout
  /** The layout in the file after the change (finalize of CURRENT/NEW collapses to JWT_SECRET). */
  readonly relayout: (vars: Readonly<Record<string, string>>) => EnvLayout
  /** True for a JWT secret: the file as read back must make the keyring sign with the new key. */
  readonly signs: boolean
}

/** The JWT targets `--secret` names in this file. */
function jwtTargets(name: string | undefined, env: Readonly<Record<string, string>>, convention: EnvConvention | undefined): EnvTarget[] {
  return envSecretsOf(name, env).map((secret) => ({
    name: SECRET_NAMES[secret], kind: secret === 'data' ? 'encryption' : 'jwt', layout: envLayout(env, secret, convention), relayout: (vars) => envLayout(vars, secret, convention), signs: true,
  }))
}

/** Runs the planned change of one or more JWT secrets of the env file in one write, with their audit rows, and prints what happened. */
export async function applyEnvPlan(io: CliIo, globals: GlobalOptions, secretName: string | undefined, plan: EnvPlanner, options: EnvPlanOptions = {}): Promise<void> {
  const read = await readJwtEnvFile(globals)
  const convention = conventionOf(read, options.convention)
  await applyEnvTargets(io, globals, read, jwtTargets(secretName, read.env, convention), plan, {
    ...options,
    ...(convention === 'current-new' ? { append: [CONVENTION_MARKER] } : {}),
    ...(convention === 'pair' ? { drop: [CONVENTION_MARKER] } : {}),
  })
}

/**
 * The shared core: plans each target, writes every change in one atomic rewrite with one
 * audit row per target, checks the file as read back, reports, and sends the notices.
 */
export async function applyEnvTargets(
  io: CliIo,
  globals: GlobalOptions,
  read: EnvFileRead & { file: string },
  targetList: readonly EnvTarget[],
  plan: EnvPlanner,
  options: EnvPlanOptions & { append?: readonly string[], drop?: readonly string[] } = {},
): Promise<void> {
  const { file, text, env } = read
  const targets = targetList.map((target) => {
    const lifetime = tokenLifetimeOf(target.layout, env, io.env, options.tokenLifetime, file)
    return { ...target, lifetime, plan: plan(env, target.layout, () => generateSecret(), lifetime) }
  })
  const planned = targets.filter((t): t is typeof t & { plan: EnvPlan } => t.plan !== undefined)
  if (planned.length === 0) {
    const described = targets.map((t) => describeEnvSecret(env, t.layout, t.lifetime))
    if (globals.json === true) io.stdout(`${JSON.stringify({ changed: false, file, secrets: described, ...described[0] })}\n`)
    else for (const t of targets) io.stdout(`nothing to do: no old key of ${t.layout.restVar ?? t.layout.signVar} is in its grace window\n`)
    return
  }
  const change: EnvChange = {
    set: Object.assign({}, ...planned.map((t) => t.plan.set)) as Record<string, string>,
    remove: planned.flatMap((t) => t.plan.remove),
    ...(options.append === undefined ? {} : { append: options.append }),
    ...(options.drop === undefined ? {} : { drop: options.drop }),
  }
  const predicted = predict(env, change)
  const now = Date.now()
  const entries: EnvAuditEntry[] = planned.map((t) => ({
    secret: t.name,
    method: t.plan.method,
    notes: `${t.plan.notes}; ${kidNotes(describeEnvSecret(env, t.layout, t.lifetime), describeEnvSecret(predicted, t.relayout(predicted), t.lifetime))}${options.reason === undefined ? '' : `; reason: ${options.reason}`}`,
    ...rotationOf(t.plan.method, env, t.layout, now),
    kind: t.kind,
  }))
  let written: EnvWriteResult | undefined
  const audit = await auditedEnvChange(io, globals, { ...env, ...predicted }, entries, { path: file, oldText: text }, async () => {
    written = await updateEnvFile(file, change, {
      single: MANAGED_ENV_VARS,
      expectText: text,
      backups: backupsOf(io),
      verify: (after) => signerCheck(after, planned),
    })
  })
  const result = written as unknown as EnvWriteResult
  const after = result.after
  const dropped = planned.flatMap((t) => t.plan.dropped ?? [])
  const holding = dropped.length === 0 ? [] : await backupsHolding(result.target, dropped)
  const shredded: string[] = []
  if (options.shredBackups === true) for (const backup of holding) shredded.push(await shredFile(backup).then(() => backup))
  const states: Record<string, unknown>[] = planned.map((t) => ({ ...describeEnvSecret(after, t.relayout(after), t.lifetime), method: t.plan.method, notes: t.plan.notes }))
  const befores = planned.map((t) => describeEnvSecret(env, t.layout, t.lifetime))
  const kind = options.notice ?? noticeKindOf(planned[0]?.plan.method ?? '')
  if (kind !== undefined) {
    await sendEnvNotices(io, env, envEvents(kind, {
      secrets: planned.map((t) => t.name),
      kids: states.map((s, i) => kind === 'finalize' ? kidIn(befores[i] as Record<string, unknown>, 'previous') : kidIn(s, 'current')),
      operator: operatorOf(globals),
      at: now,
      finalizeSafeAt: states.map((s) => s.finalizeSafeAt as string | null).find((s) => s !== null) ?? null,
      ...(options.reason === undefined ? {} : { reason: options.reason }),
    }))
  }
  const report = {
    changed: true, file, target: result.target, mode: `0${result.mode.toString(8)}`, backup: result.backup, warnings: result.warnings,
    backupsHoldingDroppedSecrets: options.shredBackups === true ? [] : holding, shreddedBackups: shredded,
    operator: operatorOf(globals), audit, secrets: states, ...(options.followUp === undefined ? {} : { followUp: options.followUp }),
    // One secret: its fields at the top level too, as before `--secret all` existed.
    ...(states.length === 1 ? { method: planned[0]?.plan.method, notes: planned[0]?.plan.notes, ...states[0] } : {}),
  }
  for (const warning of result.warnings) io.stderr(`rekey: warning: ${warning}\n`)
  if (globals.json === true) {
    io.stdout(`${JSON.stringify(report)}\n`)
    return
  }
  for (const state of states) {
    io.stdout(`${String(state.method)} ${String(state.secret)}: ${String(state.notes)}\n`)
    for (const key of state.keys as { kid: string, state: string, variable: string }[]) io.stdout(`  ${key.state.padEnd(8)} ${key.kid}  (${key.variable})\n`)
    // A data key encrypts values, not tokens: no lifetime to show.
    if (state.secret !== 'ENCRYPTION_KEY') io.stdout(`  token lifetime ${lifetimeText(tokenLifetimeOfState(state))}\n`)
    if (state.finalizeSafeAt !== null) io.stdout(`  finalize is safe from ${String(state.finalizeSafeAt)}\n`)
  }
  io.stdout(`${file} rewritten${result.target === path.resolve(file) ? '' : ` at its target ${result.target}`} (mode 0${result.mode.toString(8)} kept); the old file is ${result.backup ?? 'not kept (it was new)'}\n`)
  if (holding.length > 0 && shredded.length === 0) io.stdout(`backups still holding a retired or revoked secret: ${holding.join(', ')} (remove them with --shred-backups)\n`)
  if (shredded.length > 0) io.stdout(`shredded backups holding a retired or revoked secret: ${shredded.join(', ')}\n`)
  io.stdout(`audit row${audit.seqs.length > 1 ? 's' : ''} ${audit.seqs.join(', ')} in ${audit.store}\n`)
  for (const line of options.followUp ?? []) io.stdout(`${line}\n`)
}

const tokenLifetimeOfState = (state: Record<string, unknown>): TokenLifetime => state.tokenLifetime as TokenLifetime

/** The variables after a change, as planned (before the writer renders them). */
function predict(env: Readonly<Record<string, string>>, change: EnvChange): Record<string, string> {
  const out: Record<string, string> = { ...env }
  for (const key of change.remove ?? []) delete out[key]
  return { ...out, ...change.set }
}

/**
 * The check on the file as read back: for each secret, the keyring the app builds from the
 * file signs with the secret the plan meant (a second assignment or a precedence rule that
 * shadows it would leave the old key signing while every report said it was rotated).
 */
export function signerCheck(after: Readonly<Record<string, string>>, planned: readonly { layout: EnvLayout, plan: EnvPlan, signs: boolean }[]): string | undefined {
  for (const { layout, plan, signs } of planned) {
    if (plan.signing === undefined) continue
    if (!signs) {
      if (signingSecret(after, layout) !== plan.signing) return `${layout.signVar} does not hold the new value`
      continue
    }
    const keys = readEnvKeys(after, layout.purpose)
    const family = layout.restVar ?? layout.signVar
    // A generic JWT_SECRET beside JWT_ACCESS_SECRET does not sign access tokens: only its own reading counts.
    const signer = keys.source.includes(family) || keys.source.includes(layout.signVar)
      ? keys.keys.find((k) => k.state === 'current')
      : undefined
    const got = signer !== undefined && 'secret' in signer ? String(signer.secret) : signingSecret(after, layout)
    if (got !== plan.signing) return `${family}: the key that signs is kid ${kidOf(got) ?? 'none'}, not the new kid ${kidOf(plan.signing) ?? 'none'}`
  }
  return undefined
}

/**
 * Writes a new secret into `--var` of the env file, with its audit row, once `check` accepts
 * the value it replaces (and the file it would change); nothing secret is returned. A file
 * that mixes conventions is refused with the keyring's message, as by every command, and so
 * is a write that would make it mix them (`JWT_SECRET` into a `JWT_SECRET_CURRENT` file).
 */
export async function applyEnvGen(io: CliIo, globals: GlobalOptions, variable: string, secret: string, description: string, check: (current: string | undefined, env: Readonly<Record<string, string>>) => void, options: { rotation?: boolean } = {}): Promise<EnvAuditResult> {
  const file = globals.envFile as string
  const { text, env, exists } = await readEnvFileStrict(file, [variable, ...MANAGED_ENV_VARS])
  assertOneConvention(env)
  try {
    assertOneConvention({ ...env, [variable]: secret })
  } catch (err) {
    throw new RekeyError('ERR_CONFIG', `${variable} would make ${file} mix conventions, which the app refuses (${(err as Error).message}): nothing was written; rotate the secret the file has with rekey rotate instead`)
  }
  const old = env[variable]
  check(old, env)
  return auditedEnvChange(io, globals, { ...env, [variable]: secret }, {
    secret: variable,
    method: 'gen',
    notes: `${description}; kid ${kidOf(old) ?? 'none'} -> ${kidOf(secret) ?? 'none'}`,
    // A value derived from another secret (the data-key access key) is no rotation of its own:
    // it changes with the master key, and is not tracked (or ever due) by itself.
    rotatedAt: options.rotation === false ? null : Date.now(),
  }, { path: file, oldText: exists ? text : null }, async () => {
    const result = await updateEnvFile(file, { set: { [variable]: secret } }, { expectText: text, backups: backupsOf(io), single: [variable] })
    for (const warning of result.warnings) io.stderr(`rekey: warning: ${warning}\n`)
  })
}
