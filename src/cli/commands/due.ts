import { InvalidArgumentError, Option, type Command } from 'commander'
import { parseDuration } from '../../core/duration.ts'
import { dueReport, type DueEntry } from '../../service/inventory/inventory.ts'
import { commandConfig, openForRead, withStore } from '../audit-store.ts'
import { CliExit, EXIT, type CliIo, type GlobalOptions } from '../context.ts'
import { isoSeconds, renderTable } from '../table.ts'

interface DueOptions {
  within: number
  all?: boolean
}

/** `--within`: a duration with a unit; a bare number would be ambiguous (seconds? days?). */
function withinArg(value: string): number {
  const seconds = /[a-z]\s*$/i.test(value) ? parseDuration(value) : undefined
  if (seconds === undefined) throw new InvalidArgumentError('must be a duration with a unit, such as 7d, 2w or 36h')
  return seconds * 1000
}

function publicEntry(e: DueEntry): Record<string, unknown> {
  const iso = (at: number | null): string | null => (at === null ? null : new Date(at).toISOString())
  return {
    name: e.name, kind: e.kind, cadenceDays: e.cadenceDays, lastRotatedAt: iso(e.lastRotatedAt), lastMethod: e.lastMethod,
    firstSeenAt: iso(e.firstSeenAt), dueAt: iso(e.dueAt), status: e.status,
  }
}

function lastRotated(e: DueEntry): string {
  if (e.lastRotatedAt !== null) return `${isoSeconds(e.lastRotatedAt)}${e.lastMethod === null ? '' : ` (${e.lastMethod})`}`
  return e.firstSeenAt === null ? 'never' : `never (tracked since ${isoSeconds(e.firstSeenAt)})`
}

/** `rekey due`: secrets due or overdue for rotation by policy; exit 1 if any is overdue. */
export function registerDue(program: Command, io: CliIo): void {
  program
    .command('due')
    .description('secrets due or overdue for rotation by policy (rekey.config.json "cadence"); exit 1 if any is overdue')
    .addOption(new Option('--within <duration>', 'how far ahead counts as due').argParser(withinArg).default(7 * 86_400_000, '7d'))
    .option('--all', 'list every tracked secret, not only the due and overdue ones')
    .addHelpText('after', '\nExamples:\n  rekey due\n  rekey due --within 30d --json\n  rekey --env .env due --all\n\nIn CI, run it weekly: it exits 1 when a secret is overdue.')
    .action(async (options: DueOptions, command: Command) => {
      const globals = command.optsWithGlobals<GlobalOptions>()
      const config = await commandConfig(io, globals)
      const location = config.store
      const policy = config.cadence
      const store = await openForRead(location)
      const entries = store === null ? [] : await withStore(store, (s) => dueReport(s, policy, Date.now(), options.within))
      const shown = options.all === true ? entries : entries.filter((e) => e.status !== 'ok')
      const overdue = entries.filter((e) => e.status === 'overdue')
      if (globals.json === true) {
        io.stdout(`${JSON.stringify({ within: `${options.within / 86_400_000}d`, tracked: entries.length, overdue: overdue.length, secrets: shown.map(publicEntry) })}\n`)
      } else if (entries.length === 0) {
        io.stdout(`no secret is tracked in ${location} yet (rotate one, or record a manual rotation with: rekey record NAME)\n`)
      } else if (shown.length === 0) {
        io.stdout(`nothing is due within ${options.within / 86_400_000} days (${entries.length} secrets tracked)\n`)
      } else {
        io.stdout(renderTable(
          ['Secret', 'Kind', 'Last rotated', 'Due at', 'Status'],
          shown.map((e) => [e.name, e.kind, lastRotated(e), e.dueAt === null ? 'now' : isoSeconds(e.dueAt), e.status]),
        ))
      }
      if (overdue.length > 0) throw new CliExit(EXIT.REFUSED, `${overdue.length} overdue for rotation: ${overdue.map((e) => e.name).join(', ')}`)
    })
}
