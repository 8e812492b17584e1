import { InvalidArgumentError, type Command } from 'commander'
import { parseAuditHead, verifyAuditChain, type AuditHead } from '../../core/audit-chain.ts'
import { maskSecrets } from '../../core/mask.ts'
import type { AuditRecord } from '../../store/types.ts'
import { commandConfig, openAuditLog, openForRead, withStore } from '../audit-store.ts'
import { CliExit, EXIT, type CliIo, type GlobalOptions } from '../context.ts'
import { isoSeconds, parseIsoDate, renderTable } from '../table.ts'

interface AuditOptions {
  verify?: boolean
  since?: number
  head?: AuditHead
}

function sinceArg(value: string): number {
  const at = parseIsoDate(value)
  if (at === undefined) throw new InvalidArgumentError('must be an ISO 8601 date such as 2026-03-01 or 2026-03-01T10:00:00Z')
  return at
}

function headArg(value: string): AuditHead {
  const head = parseAuditHead(value)
  if (head === undefined) throw new InvalidArgumentError('must be SEQ:HASH as `rekey audit --verify` prints it (at least 12 hex characters)')
  return head
}

/** A row as printed: notes masked again, in case a writer did not. */
function publicRow(row: AuditRecord): Record<string, unknown> {
  return {
    seq: row.seq, date: new Date(row.at).toISOString(), secret: row.secret, operator: row.operator, method: row.method,
    notes: maskSecrets(row.notes), request: row.requestId, prevHash: row.prevHash, hash: row.hash,
  }
}

/** `rekey audit`: the audit log as the runbook's rotation log; `--verify` checks its hash chain. */
export function registerAudit(program: Command, io: CliIo): void {
  program
    .command('audit')
    .description('the audit log (Date | Secret | Operator | Method | Notes | Request); --verify checks its hash chain, exit 1 if broken')
    .option('--verify', 'check the hash chain: exit 0 if intact, 1 naming the first bad row')
    .option('--since <date>', 'only rows at or after this ISO 8601 date', sinceArg)
    .option('--head <seq:hash>', 'with --verify: a head printed by an earlier --verify, which must still be in the log (detects rows cut from the end)', headArg)
    .addHelpText('after', '\nExamples:\n  rekey audit\n  rekey audit --since 2026-01-01 --json\n  rekey --env .env audit --verify\n  rekey audit --verify --head 42:3f9a0c1d2e4b5a6f')
    .action(async (options: AuditOptions, command: Command) => {
      const globals = command.optsWithGlobals<GlobalOptions>()
      if (options.head !== undefined && options.verify !== true) throw new CliExit(EXIT.USAGE, '--head goes with --verify')
      const config = await commandConfig(io, globals)
      const location = config.store
      const store = await openForRead(location)
      if (options.verify === true) {
        const verifyOptions = options.head === undefined ? {} : { expectHead: options.head }
        // Only a log with rows needs the key (never generated: a new key could not verify old rows).
        // Across master-key rotations the chain has segments; REKEY_MASTER_KEY_PREV checks the older one row by row.
        const report = store === null
          ? verifyAuditChain([], () => '', verifyOptions)
          : await withStore(store, async (s) => {
            const rows = await s.listAudit()
            return rows.length === 0 ? verifyAuditChain(rows, () => '', verifyOptions) : (await openAuditLog(io, config, s)).verifyRows(rows, verifyOptions)
          })
        if (globals.json === true) io.stdout(`${JSON.stringify(report)}\n`)
        if (report.firstBad !== undefined) throw new CliExit(EXIT.REFUSED, `audit chain broken at row ${report.firstBad.seq}: ${report.firstBad.reason}`)
        if (globals.json !== true) {
          io.stdout(`audit chain intact: ${report.rows} rows\n`)
          if (report.head !== null) io.stdout(`head: ${report.head.seq}:${report.head.hash.slice(0, 16)} (keep it elsewhere; --head checks no rows were cut from the end)\n`)
        }
        return
      }
      const rows = store === null ? [] : await withStore(store, (s) => s.listAudit(options.since === undefined ? {} : { since: options.since }))
      if (globals.json === true) {
        io.stdout(`${JSON.stringify(rows.map(publicRow))}\n`)
        return
      }
      if (rows.length === 0) {
        io.stdout(`no audit rows${options.since === undefined ? '' : ` since ${isoSeconds(options.since)}`} in ${location}\n`)
        return
      }
      io.stdout(renderTable(
        ['Date', 'Secret', 'Operator', 'Method', 'Notes', 'Request'],
        rows.map((r) => [isoSeconds(r.at), r.secret, r.operator, r.method, maskSecrets(r.notes), r.requestId ?? '-']),
      ))
    })
}
