/**
 * A `node --test` reporter that prints nothing while tests run and, at the end, every test or
 * suite that was skipped, grouped by the reason it gave, so that a green run says what it
 * did not check. Used by `npm test` beside the spec reporter (test/runner/run.ts).
 */
import path from 'node:path'

interface TestEvent {
  type: string
  data: { name?: string, file?: string, skip?: string | boolean, nesting?: number }
}

export async function* skipSummary(source: AsyncIterable<TestEvent>): AsyncGenerator<string> {
  const byReason = new Map<string, Map<string, number>>()
  for await (const event of source) {
    if (event.type !== 'test:pass' && event.type !== 'test:fail') continue
    const skip = event.data.skip
    if (skip === undefined || skip === false) continue
    const reason = typeof skip === 'string' && skip !== '' ? skip : '(no reason given)'
    const file = event.data.file === undefined ? '(unknown file)' : path.relative(process.cwd(), event.data.file)
    const files = byReason.get(reason) ?? new Map<string, number>()
    files.set(file, (files.get(file) ?? 0) + 1)
    byReason.set(reason, files)
  }
  if (byReason.size === 0) {
    yield '\nskipped: nothing\n'
    return
  }
  let total = 0
  for (const files of byReason.values()) for (const n of files.values()) total += n
  yield `\nskipped: ${total} (tests and suites), by reason\n`
  for (const [reason, files] of byReason) {
    yield `  - ${reason}\n`
    for (const [file, n] of [...files].sort()) yield `      ${file} (${n})\n`
  }
}

// node --test loads a reporter from its default export: the one default export of the project.
export default skipSummary
