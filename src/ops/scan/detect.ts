/**
 * Detection on one piece of text: secretlint's recommended preset (cloud keys, private keys,
 * database URLs with passwords, provider tokens) through its core API, and the live-secret
 * matcher. Messages are rebuilt so that no matched value survives in them.
 */
import { performance } from 'node:perf_hooks'
import { lintSource } from '@secretlint/core'
import { secretLintProfiler } from '@secretlint/profiler'
import { creator as recommendedPreset } from '@secretlint/secretlint-rule-preset-recommend'
import { escapeControls } from '../../core/terminal-text.ts'
import { fingerprintOf, LIVE_RULE, maskSecret, type Finding } from './finding.ts'
import { liveMessage, type LiveMatcher } from './live-secrets.ts'

const CONFIG = { rules: [{ id: '@secretlint/secretlint-rule-preset-recommend', rule: recommendedPreset }] }

/** Where a piece of text comes from, and how its lines map to the file's. */
export interface TextOrigin {
  /** Reported path (relative, `/`). */
  readonly file: string
  readonly commit?: string
  /** Maps the text's 1-based line to the file's; default: the same. */
  readonly lineOf?: (line: number) => number
}

// The subset of secretlint's result message this module reads.
interface LintMessage {
  type: string
  ruleId: string
  messageId?: string
  message: string
  range: readonly [number, number]
  loc: { start: { line: number } }
  data?: object
}

/** The matched value: the longest string in the rule's data found in the text, else the range. */
function matchedValue(text: string, m: LintMessage): { value: string, parts: string[] } {
  const parts = Object.values(m.data ?? {}).filter((v): v is string => typeof v === 'string' && v.length >= 4 && text.includes(v))
  parts.sort((a, b) => b.length - a.length)
  return { value: parts[0] ?? text.slice(m.range[0], m.range[1]), parts }
}

/** secretlint's message with every matched value replaced by its masked preview. */
function safeMessage(m: LintMessage, parts: readonly string[], value: string): string {
  let message = m.message
  for (const part of [...parts, value]) {
    if (part.length >= 4) message = message.split(part).join(maskSecret(part))
  }
  return message
}

// secretlint's always-on profiler keeps every performance mark of the process and searches
// them linearly on each new one: scanning 10,000 files would cost minutes. After its pending
// measures settle, the marks are dropped every PROFILER_FLUSH calls.
const PROFILER_FLUSH = 10
let sinceFlush = 0

async function flushProfiler(): Promise<void> {
  await new Promise((resolve) => setImmediate(resolve)) // the observer's callbacks run first
  await secretLintProfiler.getMeasures().catch(() => [])
  const profiler = secretLintProfiler as unknown as { entries: unknown[], measures: unknown[] }
  profiler.entries.length = 0
  profiler.measures.length = 0
  performance.clearMarks()
  performance.clearMeasures()
}

/**
 * The path secretlint is given; findings keep the real one. Its profiler names marks
 * `…::end||<path>` and reads them back with a regular expression: a CR, LF or U+2028/9 in the
 * path, or a `::end` of its own, makes it measure from a mark never set, which throws out of
 * reach of any catch. An empty path is refused outright.
 */
function profilerSafePath(file: string): string {
  return escapeControls(file).replace(/:(?=:)/g, ':\\') || '(unnamed)'
}

/** Finds leaks in `text`: every secretlint match, and every live rekey secret. */
export async function detect(text: string, origin: TextOrigin, matcher: LiveMatcher): Promise<Finding[]> {
  const lineOf = origin.lineOf ?? ((line: number) => line)
  const at = origin.commit === undefined ? {} : { commit: origin.commit }
  const findings: Finding[] = []
  if (++sinceFlush >= PROFILER_FLUSH) {
    sinceFlush = 0
    await flushProfiler()
  }
  const result = await lintSource({
    source: { content: text, filePath: profilerSafePath(origin.file), contentType: 'text' },
    options: { config: CONFIG, maskSecrets: false, noPhysicFilePath: true },
  })
  for (const m of result.messages as LintMessage[]) {
    if (m.type !== 'message') continue
    const { value, parts } = matchedValue(text, m)
    findings.push({
      rule: m.ruleId,
      ...(m.messageId === undefined ? {} : { messageId: m.messageId }),
      file: origin.file,
      line: lineOf(m.loc.start.line),
      ...at,
      fingerprint: fingerprintOf(m.ruleId, origin.file, value),
      live: false,
      preview: maskSecret(value),
      message: safeMessage(m, parts, value),
    })
  }
  if (matcher.size > 0) {
    const lines = text.split('\n')
    for (let i = 0; i < lines.length; i++) {
      for (const hit of matcher.match(lines[i] as string)) {
        findings.push({
          rule: LIVE_RULE,
          file: origin.file,
          line: lineOf(i + 1),
          ...at,
          fingerprint: fingerprintOf(LIVE_RULE, origin.file, hit.origin.kid),
          live: true,
          preview: `kid ${hit.origin.kid}`,
          message: liveMessage(hit.origin),
        })
      }
    }
  }
  return findings
}
