import { InvalidArgumentError, type Command } from 'commander'
import { recordRotation } from '../../service/inventory/inventory.ts'
import { commandConfig, envFileVars, liveSecretsOf, openForWrite, withStore } from '../audit-store.ts'
import { CliExit, EXIT, operatorOf, type CliIo, type GlobalOptions } from '../context.ts'
import { isoSeconds, parseIsoDate } from '../table.ts'

interface RecordOptions {
  method: string
  notes?: string
  kind?: string
  at?: number
}

function kindArg(value: string): string {
  if (!/^[a-z][a-z0-9-]{0,31}$/.test(value)) throw new InvalidArgumentError('must be a lowercase word such as jwt, token, smtp, storage, database or manual')
  return value
}

function atArg(value: string): number {
  const at = parseIsoDate(value)
  if (at === undefined) throw new InvalidArgumentError('must be an ISO 8601 date such as 2026-03-01 or 2026-03-01T10:00:00Z')
  return at
}

/** `rekey record NAME`: a rotation done by hand, into the inventory and the audit log. */
export function registerRecord(program: Command, io: CliIo): void {
  program
    .command('record')
    .argument('<name>', 'the secret, usually its variable name (SMTP_PASSWORD, AWS_SECRET_ACCESS_KEY...)')
    .description('record a rotation done by hand (SMTP, Twilio, storage keys...): the inventory restarts its cadence, the audit log gets a row')
    .option('--method <method>', 'how it was rotated', 'manual')
    .option('--notes <text>', 'what was done (ticket, reason); secrets pasted here are masked')
    .option('--kind <kind>', 'jwt, token, smtp, storage, database or manual (default: guessed from the name)', kindArg)
    .option('--at <date>', 'when it was rotated, if not now (ISO 8601)', atArg)
    .addHelpText('after', '\nExamples:\n  rekey record SMTP_PASSWORD --notes "rotated in the provider console, ticket OPS-1234"\n  rekey record AWS_SECRET_ACCESS_KEY --method "aws iam create-access-key" --at 2026-02-20')
    .action(async (name: string, options: RecordOptions, command: Command) => {
      const globals = command.optsWithGlobals<GlobalOptions>()
      if (!/^[A-Za-z_][A-Za-z0-9_.:-]{0,127}$/.test(name)) throw new CliExit(EXIT.USAGE, 'NAME must be a variable-like name (letters, digits, _ . : -)')
      if (options.method.trim() === '') throw new CliExit(EXIT.USAGE, '--method must not be empty')
      const now = Date.now()
      // A few minutes of slack for clocks; a rotation in the future is a typo.
      if (options.at !== undefined && options.at > now + 300_000) throw new CliExit(EXIT.USAGE, '--at is in the future')
      const fileVars = await envFileVars(globals)
      const config = await commandConfig(io, globals, fileVars)
      const location = config.store
      // A backdated rotation says so in its audit row: the row's own date is when it was recorded.
      const backdated = options.at === undefined ? '' : `rotated at ${isoSeconds(options.at)} (recorded ${isoSeconds(now)})`
      const notes = [backdated, options.notes ?? ''].filter((n) => n !== '').join('; ')
      const { store, audit } = await openForWrite(io, config)
      const { secret, seq } = await withStore(store, () => recordRotation(store, audit, config.cadence, {
        secret: name,
        operator: operatorOf(globals),
        method: options.method,
        notes,
        at: now,
        liveSecrets: liveSecretsOf(io.env, fileVars),
        ...(options.kind === undefined ? {} : { kind: options.kind }),
        ...(options.at === undefined ? {} : { rotatedAt: options.at }),
        ...(options.notes === undefined ? {} : { secretNotes: options.notes }),
      }))
      const rotatedAt = secret.lastRotatedAt ?? now
      const dueAt = rotatedAt + secret.cadenceDays * 86_400_000
      const report = { secret: secret.name, kind: secret.kind, cadenceDays: secret.cadenceDays, rotatedAt: new Date(rotatedAt).toISOString(), dueAt: new Date(dueAt).toISOString(), method: secret.lastMethod, audit: { seq, store: location } }
      io.stdout(globals.json === true
        ? `${JSON.stringify(report)}\n`
        : `recorded a rotation of ${secret.name} (${secret.kind}, every ${secret.cadenceDays} d) at ${isoSeconds(rotatedAt)}; next due ${isoSeconds(dueAt)}; audit row ${seq}\n`)
    })
}
