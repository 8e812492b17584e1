import type { Command } from 'commander'
import { envLayout, type EnvSecret } from '../../core/env-rotation.ts'
import { readEnvFile } from '../../service/env-file.ts'
import type { StatusReport } from '../../service/key-views.ts'
import { CliExit, EXIT, type CliIo, type GlobalOptions } from '../context.ts'
import { describeEnvSecret } from '../env-mode.ts'
import { columnLines, dataKeyEvidence, dataKeyStates } from '../data-key.ts'
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
    .addHelpText('after', '\nExamples:\n  rekey --env-file .env status\n  rekey --env-file .env --json status\n  rekey status                  # managed: ./.rekey/rekey.db\n  rekey --json --store postgres://rekey@db/rekey status')
    .action(async (_options: unknown, command: Command) => {
      const globals = command.optsWithGlobals<GlobalOptions>()
      if (globals.envFile === undefined) {
        const report = await withManaged(io, globals, (ctx) => ctx.lifecycle.status())
        const columns = await dataKeyEvidence(io, globals, {})
        printReport(io, globals, columns.length === 0 ? report : { ...report, encryptedColumns: columns }, () => [
          ...managedLines(report), ...columnLines(columns, dataKeyStates({ ...io.env } as Record<string, string>)),
        ])
        return
      }
      const { env, exists } = await readEnvFile(globals.envFile as string)
      if (!exists) throw new CliExit(EXIT.USAGE, `${globals.envFile} does not exist`)
      const secrets: EnvSecret[] = []
      if (env.JWT_SECRET !== undefined || env.JWT_SECRET_CURRENT !== undefined || env.JWT_SECRET_NEW !== undefined) secrets.push('jwt')
      if (env.JWT_ACCESS_SECRET !== undefined) secrets.push('access')
      if (env.JWT_REFRESH_SECRET !== undefined) secrets.push('refresh')
      if (env.ENCRYPTION_KEY !== undefined) secrets.push('data')
      const report = secrets.map((s) => describeEnvSecret(env, envLayout(env, s)))
      const columns = await dataKeyEvidence(io, globals, env)
      if (globals.json === true) {
        io.stdout(`${JSON.stringify({ file: globals.envFile, secrets: report, ...(columns.length === 0 ? {} : { encryptedColumns: columns }) })}\n`)
        return
      }
      if (report.length === 0) io.stdout(`no JWT secret in ${globals.envFile} (create one with: rekey --env-file ${globals.envFile} gen --var JWT_SECRET)\n`)
      for (const s of report) {
        io.stdout(`${String(s.secret)}  phase: ${String(s.phase)}  convention: ${String(s.convention)}\n`)
        for (const key of s.keys as { kid: string, state: string, variable: string }[]) io.stdout(`  ${key.state.padEnd(8)} ${key.kid}  (${key.variable})\n`)
        if (s.rotatedAt !== null) io.stdout(`  rotated at       ${String(s.rotatedAt)}\n`)
        if (s.finalizeSafeAt !== null) io.stdout(`  finalize safe at ${String(s.finalizeSafeAt)}\n`)
      }
      for (const line of columnLines(columns, dataKeyStates(env))) io.stdout(`${line}\n`)
    })
}

const pct = (share: number): string => `${(share * 100).toFixed(1)}%`

function managedLines(report: StatusReport): string[] {
  const lines = [`store ${report.store}  key-set version ${report.keysetVersion}`]
  for (const s of report.secrets) {
    lines.push(`${s.secret}  phase: ${s.phase}`)
    for (const k of s.keys) {
      const use = k.state === 'retired' || k.state === 'revoked' ? '' : `  ${pct(k.share)} of verifications (1 h)  ${k.liveSessions} live session(s)`
      const safe = k.finalizeSafeAt === null ? '' : k.finalizeSafe === true ? '  finalize: safe now' : `  finalize safe at ${k.finalizeSafeAt}`
      lines.push(`  ${k.state.padEnd(8)} ${k.kid}${use}${safe}`)
    }
  }
  lines.push(report.instances.length === 0 ? 'instances: none running' : 'instances:')
  for (const i of report.instances) {
    lines.push(`  ${i.instanceId}  ${i.hostname} pid ${i.pid}  key-set v${i.keysetVersion}${i.upToDate ? '' : ' (behind)'}  last seen ${i.lastSeen}`)
  }
  lines.push(report.due.length === 0 ? 'secrets due within 7 days: none' : 'secrets due within 7 days:')
  for (const d of report.due) lines.push(`  ${d.status.padEnd(8)} ${d.name} (${d.kind})  due ${d.dueAt ?? 'now'}`)
  return lines
}
