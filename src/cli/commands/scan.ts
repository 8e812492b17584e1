import type { Command } from 'commander'
import { rekeyVersion } from '../../ops/backup/version.ts'
import { DATA_KEY_FINDING, DATA_KEY_REMEDY, LiveMatcher } from '../../ops/scan/live-secrets.ts'
import { addEnvFileSecrets, addStoreSecrets } from '../../ops/scan/live-sources.ts'
import { applyBaseline, formatJson, formatSarif, formatText, FORMATS, loadBaseline, type ScanFormat } from '../../ops/scan/report.ts'
import { readEnvFile } from '../../config/env-file.ts'
import { commandConfig } from '../audit-store.ts'
import { CliExit, EXIT, type CliIo, type GlobalOptions } from '../context.ts'

interface ScanOptions {
  history?: boolean
  format: string
  baseline?: string
}

/** `rekey scan`: leaked secrets in the working tree or the git history; exit 1 on findings. */
export function registerScan(program: Command, io: CliIo): void {
  program
    .command('scan')
    .description('find leaked secrets in files or the git history; a live rekey secret is reported as such; exit 1 on findings')
    .argument('[path]', 'directory to scan', '.')
    .option('--history', 'scan every commit reachable from any ref instead of the working tree')
    .option('--format <format>', 'text, json or sarif', 'text')
    .option('--baseline <file>', 'suppress the findings of an earlier JSON report (rekey scan --format json > baseline.json)')
    .addHelpText('after', [
      '',
      'Live secrets come from --env-file (JWT_* and REKEY_* secrets) and from the managed store',
      '(--store, REKEY_STORE, or ./.rekey/rekey.db if it exists), opened with REKEY_MASTER_KEY.',
      '',
      'Examples:',
      '  rekey scan',
      '  rekey --env .env scan --history',
      '  rekey scan --history --format sarif > rekey.sarif',
      '  rekey scan --format json > baseline.json && rekey scan --baseline baseline.json',
    ].join('\n'))
    .action(async (target: string, options: ScanOptions, command: Command) => {
      const globals = command.optsWithGlobals<GlobalOptions & ScanOptions>()
      if (!(FORMATS as readonly string[]).includes(options.format)) throw new CliExit(EXIT.USAGE, '--format must be text, json or sarif')
      const format = options.format as ScanFormat
      // secretlint loads only for this command.
      const { scanHistory, scanRoot, scanWorkingTree } = await import('../../ops/scan/scan.ts')
      const root = await scanRoot(target)
      const baseline = options.baseline === undefined ? new Set<string>() : await loadBaseline(options.baseline)

      const matcher = new LiveMatcher()
      let masterKey = io.env.REKEY_MASTER_KEY
      if (globals.envFile !== undefined) {
        await addEnvFileSecrets(matcher, globals.envFile)
        masterKey ??= (await readEnvFile(globals.envFile)).env.REKEY_MASTER_KEY
      }
      const explicit = globals.store !== undefined || io.env.REKEY_STORE !== undefined
      const fromStore = await addStoreSecrets(matcher, { location: (await commandConfig(io, globals)).store, explicit, masterKey })
      if (fromStore.warning !== undefined) io.stderr(`rekey scan: ${fromStore.warning}\n`)

      const result = options.history === true ? await scanHistory(root, matcher) : await scanWorkingTree(root, matcher)
      for (const note of result.notes) io.stderr(`rekey scan: ${note}\n`)
      const findings = applyBaseline(result.findings, baseline)
      const suppressed = result.findings.length - findings.length
      if (format === 'json' || (format === 'text' && globals.json === true)) io.stdout(formatJson(result, findings, suppressed))
      else if (format === 'sarif') io.stdout(formatSarif(findings, rekeyVersion()))
      else io.stdout(formatText(result, findings, suppressed))
      if (findings.length > 0) {
        const data = findings.some((f) => f.live && f.message.startsWith(DATA_KEY_FINDING))
        const signing = findings.some((f) => f.live && !f.message.startsWith(DATA_KEY_FINDING))
        const advice = [signing ? 'run rekey emergency' : '', data ? `a data key: run ${DATA_KEY_REMEDY} (with --env FILE for a key of an env file)` : ''].filter((a) => a !== '').join('; ')
        throw new CliExit(EXIT.REFUSED, `${findings.length} finding(s)${advice === '' ? '' : `, live secrets among them: ${advice}`}`)
      }
    })
}
