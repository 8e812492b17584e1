/**
 * The three report formats of `rekey scan` (text for people, JSON, SARIF 2.1.0 for code
 * scanning) and baselines. A report holds masked previews and fingerprints, never a secret.
 */
import { readFile } from 'node:fs/promises'
import { RekeyError } from '../../core/errors.ts'
import { escapeControls } from '../../core/terminal-text.ts'
import { ENV_FILE_RULE, LIVE_RULE, REKEY_FILE_RULE, type Finding } from './finding.ts'
import { DATA_KEY_FINDING, DATA_KEY_REMEDY } from './live-secrets.ts'
import type { ScanResult } from './scan.ts'

export const FORMATS = Object.freeze(['text', 'json', 'sarif'] as const)
export type ScanFormat = (typeof FORMATS)[number]

/** Reads a baseline: the JSON report of an earlier scan (`rekey scan --format json > baseline.json`). */
export async function loadBaseline(file: string): Promise<Set<string>> {
  let parsed: unknown
  try {
    parsed = JSON.parse(await readFile(file, 'utf8'))
  } catch (err) {
    const why = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'does not exist' : 'is not a JSON report of rekey scan'
    throw new RekeyError('ERR_CONFIG', `baseline ${file} ${why}`)
  }
  const findings = (parsed as { findings?: unknown } | null)?.findings
  if (!Array.isArray(findings)) throw new RekeyError('ERR_CONFIG', `baseline ${file} has no "findings" array (create one with: rekey scan --format json > ${file})`)
  return new Set(findings.map((f: { fingerprint?: unknown }) => f?.fingerprint).filter((f): f is string => typeof f === 'string'))
}

/** The findings not in the baseline. */
export function applyBaseline(findings: readonly Finding[], baseline: ReadonlySet<string>): Finding[] {
  return findings.filter((f) => !baseline.has(f.fingerprint))
}

function jsonFinding(f: Finding): Record<string, unknown> {
  return {
    rule: f.rule,
    ...(f.messageId === undefined ? {} : { messageId: f.messageId }),
    file: f.file,
    line: f.line,
    ...(f.commit === undefined ? {} : { commit: f.commit }),
    fingerprint: f.fingerprint,
    live: f.live,
    preview: f.preview,
    message: f.message,
  }
}

/** `{ findings: [...], summary }`. */
export function formatJson(result: ScanResult, findings: readonly Finding[], suppressed: number): string {
  return `${JSON.stringify({
    findings: findings.map(jsonFinding),
    summary: { findings: findings.length, live: findings.filter((f) => f.live).length, suppressed, files: result.files, commits: result.commits, skipped: result.skipped },
  }, null, 2)}\n`
}

function ruleText(rule: string): { name: string, text: string } {
  if (rule === LIVE_RULE) return { name: 'LiveRekeySecret', text: 'A secret rekey uses right now is in the repository; run `rekey emergency` (for a secret of an env file: `rekey --env FILE emergency`; for a data key: `rekey rotate --secret ENCRYPTION_KEY`, rewrap, finalize)' }
  if (rule === ENV_FILE_RULE) return { name: 'TrackedEnvFile', text: 'An env file is committed to git' }
  if (rule === REKEY_FILE_RULE) return { name: 'TrackedRekeyFile', text: 'A file rekey creates (master key, store, backup) is committed to git' }
  const short = rule.replace(/^@secretlint\/secretlint-rule-/, '')
  return { name: short, text: `Credential found by secretlint (${short})` }
}

/** SARIF 2.1.0: one run, one rule per rule id seen, one result per finding. */
export function formatSarif(findings: readonly Finding[], version: string): string {
  const ruleIds = [...new Set(findings.map((f) => f.rule))].sort()
  const rules = ruleIds.map((id) => {
    const { name, text } = ruleText(id)
    return {
      id,
      name,
      shortDescription: { text },
      defaultConfiguration: { level: id === ENV_FILE_RULE ? 'warning' : 'error' },
      ...(id.startsWith('@secretlint/') ? { helpUri: `https://github.com/secretlint/secretlint/tree/master/packages/${id}` } : {}),
    }
  })
  const results = findings.map((f) => ({
    ruleId: f.rule,
    ruleIndex: ruleIds.indexOf(f.rule),
    level: f.rule === ENV_FILE_RULE ? 'warning' : 'error',
    message: { text: f.commit === undefined ? f.message : `${f.message} (commit ${f.commit})` },
    locations: [{ physicalLocation: { artifactLocation: { uri: f.file, uriBaseId: '%SRCROOT%' }, region: { startLine: f.line } } }],
    partialFingerprints: { 'rekeyFingerprint/v1': f.fingerprint },
    properties: { live: f.live, ...(f.commit === undefined ? {} : { commit: f.commit }) },
  }))
  return `${JSON.stringify({
    $schema: 'https://json.schemastore.org/sarif-2.1.0.json',
    version: '2.1.0',
    runs: [{
      tool: { driver: { name: 'rekey scan', version, informationUri: 'https://github.com/rekey/rekey/blob/main/docs/scan.md', rules } },
      results,
    }],
  }, null, 2)}\n`
}

/** Lines for people: one per finding, the advice for live secrets, a summary. */
export function formatText(result: ScanResult, findings: readonly Finding[], suppressed: number): string {
  const out: string[] = []
  for (const f of findings) {
    // A path's LF or CR would start a forged line: every control is shown as its code.
    const where = `${escapeControls(f.file)}:${f.line}${f.commit === undefined ? '' : ` @ ${f.commit.slice(0, 12)}`}`
    out.push(`${f.live ? 'LIVE ' : ''}${where}  ${f.rule}  ${f.preview}`.trimEnd())
    out.push(`  ${escapeControls(f.message)}`)
  }
  const dataKeys = findings.filter((f) => f.live && f.message.startsWith(DATA_KEY_FINDING)).length
  const live = findings.filter((f) => f.live).length - dataKeys
  if (live > 0) out.push('', `${live} live rekey secret(s) found: they still sign or verify tokens. Run the emergency command each one names now (\`rekey emergency\`, or \`rekey --env FILE emergency\` for a secret of an env file), then remove them from the repository.`)
  if (dataKeys > 0) out.push('', `${dataKeys} live rekey data key(s) found: they still decrypt the values encrypted under them. Rotate now (\`${DATA_KEY_REMEDY}\`, with --env FILE for a key of an env file), rewrap every column, finalize, then remove them from the repository (docs/crypt.md, leak response).`)
  const scope = result.commits > 0 ? `${result.commits} commits, ${result.files} file changes` : `${result.files} files`
  const extra = [suppressed > 0 ? `${suppressed} suppressed by the baseline` : '', result.skipped > 0 ? `${result.skipped} skipped (binary, over 1 MiB or unreadable)` : ''].filter((s) => s !== '')
  out.push(`${findings.length === 0 ? 'no leaks found' : `${findings.length} finding(s)`} in ${scope}${extra.length > 0 ? `; ${extra.join(', ')}` : ''}`)
  return `${out.join('\n')}\n`
}
