import type { Command } from 'commander'
import { envLayout, tokenLifetimeOf } from '../../core/env-rotation.ts'
import type { StatusReport } from '../../service/keys/key-views.ts'
import type { UsageStatus } from '../../service/keys/rotation-report.ts'
import { DATA_KEY_PURPOSE } from '../../core/data-keys.ts'
import { describeProcesses } from '../../core/usage-evidence.ts'
import type { CliIo, GlobalOptions } from '../context.ts'
import { conventionOf, describeEnvSecret, lifetimeText, presentSecrets, readJwtEnvFile } from '../env-mode.ts'
import { columnLines, dataKeyEvidence, dataKeyStates, managedDataKeyStates } from '../data-key.ts'
import { printReport, withManaged } from '../managed.ts'

/**
 * `rekey status`: keys and states, rotation phase and when finalize becomes safe; in managed
 * mode also each key's share of verifications and live sessions, and every live instance
 * with the key-set version it has loaded.
 */
export function registerStatus(program: Command, io: CliIo): void {
  program
    .command('status')
    .description('keys and their states, the rotation phase, and when finalize becomes safe')
    .addHelpText('after', '\nExamples:\n  rekey --env .env status\n  rekey --env .env --json status\n  rekey status                  # managed: ./.rekey/rekey.db\n  rekey --json --store postgres://rekey@db/rekey status')
    .option('--token-lifetime <duration>', 'env-file: the app\'s token lifetime when the file does not say (default: JWT_EXPIRATION, else 24h assumed)')
    .action(async (options: { tokenLifetime?: string }, command: Command) => {
      const globals = command.optsWithGlobals<GlobalOptions>()
      if (globals.envFile === undefined) {
        const report = await withManaged(io, globals, (ctx) => ctx.rotation.status())
        const columns = await dataKeyEvidence(io, globals, {})
        printReport(io, globals, columns.length === 0 ? report : { ...report, encryptedColumns: columns }, () => [
          ...managedLines(report), ...columnLines(columns, new Map([...dataKeyStates({ ...io.env } as Record<string, string>), ...managedDataKeyStates(report.secrets.flatMap((s) => s.keys))])),
        ])
        return
      }
      const read = await readJwtEnvFile(globals)
      const { env, file } = read
      const convention = conventionOf(read, undefined)
      const secrets = [...presentSecrets(env), ...(env.ENCRYPTION_KEY === undefined ? [] : ['data' as const])]
      const report = secrets.map((s) => {
        const layout = envLayout(env, s, convention)
        return describeEnvSecret(env, layout, tokenLifetimeOf(layout, env, io.env, options.tokenLifetime, file))
      })
      const columns = await dataKeyEvidence(io, globals, env)
      if (globals.json === true) {
        io.stdout(`${JSON.stringify({ file: globals.envFile, secrets: report, ...(columns.length === 0 ? {} : { encryptedColumns: columns }) })}\n`)
        return
      }
      if (report.length === 0) io.stdout(`no JWT secret in ${globals.envFile} (create one with: rekey --env ${globals.envFile} gen --var JWT_SECRET)\n`)
      for (const s of report) {
        io.stdout(`${String(s.secret)}  phase: ${String(s.phase)}  convention: ${String(s.convention)}\n`)
        for (const key of s.keys as { kid: string, state: string, variable: string }[]) io.stdout(`  ${key.state.padEnd(8)} ${key.kid}  (${key.variable})\n`)
        if (s.rotatedAt !== null) io.stdout(`  rotated at       ${String(s.rotatedAt)}\n`)
        if (s.secret !== 'ENCRYPTION_KEY') io.stdout(`  token lifetime   ${lifetimeText(s.tokenLifetime as Parameters<typeof lifetimeText>[0])}\n`)
        if (s.finalizeSafeAt !== null) io.stdout(`  finalize safe at ${String(s.finalizeSafeAt)}\n`)
      }
      for (const line of columnLines(columns, dataKeyStates(env))) io.stdout(`${line}\n`)
    })
}

const pct = (share: number): string => `${(share * 100).toFixed(1)}%`

/** Who reported usage, and who still verifies with each previous key: the evidence finalize weighs. */
function usageLines(report: StatusReport & Partial<UsageStatus>): string[] {
  const lines: string[] = []
  for (const [purpose, use] of Object.entries(report.finalizeEvidence ?? {})) {
    lines.push(use.total === 0
      ? `${purpose}: no reporting process verified a token of the previous key in the last 5 min`
      : `${purpose}: the previous key verified ${use.total} token(s) in the last 5 min on ${describeProcesses(use)}: finalize is refused until that stops (or --when-share-below / --force)`)
  }
  const reporters = report.reporters ?? []
  lines.push(reporters.length === 0 ? 'reporting processes (1 h): none' : 'reporting processes (1 h):')
  for (const r of reporters) lines.push(`  ${r.name.padEnd(24)} ${r.kind === 'library' ? r.instanceId : 'rekey serve'}  ${r.verificationsLastHour} verification(s)  last reported ${r.lastReportAt}`)
  return lines
}

function managedLines(report: StatusReport & Partial<UsageStatus> & { publishedUntil?: Record<string, string> }): string[] {
  const lines = [`store ${report.store}  key-set version ${report.keysetVersion}`]
  for (const s of report.secrets) {
    const data = s.secret === DATA_KEY_PURPOSE
    lines.push(data ? `ENCRYPTION_KEY (managed data keys)  phase: ${s.phase}` : `${s.secret}  phase: ${s.phase}`)
    for (const k of s.keys) {
      if (data) {
        lines.push(`  ${k.state.padEnd(8)} ${k.kid}`)
        continue
      }
      const sessions = k.liveSessions === null ? '' : `  ${k.liveSessions} live session(s) (counted ${report.liveSessionsCountedAt})`
      const use = k.state === 'retired' || k.state === 'revoked' ? '' : `  ${pct(k.share)} of verifications (1 h)${sessions}`
      const safe = k.finalizeSafeAt === null ? '' : k.finalizeSafe === true ? '  finalize: safe now' : `  finalize safe at ${k.finalizeSafeAt}`
      const published = report.publishedUntil?.[k.kid]
      lines.push(`  ${k.state.padEnd(8)} ${k.kid}${use}${safe}${published === undefined ? '' : `  published in the JWKS, signs from ${published}`}`)
      const where = report.keyProcesses?.[k.kid]
      if (where !== undefined && where.length > 0) lines.push(`           verified on ${where.map((p) => `${p.name} (${p.count})`).join(', ')}`)
    }
  }
  lines.push(...usageLines(report))
  lines.push(report.instances.length === 0 ? 'instances: none running' : 'instances:')
  for (const i of report.instances) {
    lines.push(`  ${i.instanceId}  ${i.hostname} pid ${i.pid}  key-set v${i.keysetVersion}${i.upToDate ? '' : ' (behind)'}  last seen ${i.lastSeen}`)
  }
  lines.push(report.due.length === 0 ? 'secrets due within 7 days: none' : 'secrets due within 7 days:')
  for (const d of report.due) lines.push(`  ${d.status.padEnd(8)} ${d.name} (${d.kind})  due ${d.dueAt ?? 'now'}`)
  return lines
}
