/**
 * A runbook's commands as its Markdown writes them: every line of its `sh` blocks (comments
 * and blank lines aside), run in order by one bash script that echoes each command before it,
 * so that the combined output splits back into what each command printed.
 */

/** One command of the runbook and what it printed (stdout and stderr, in order). */
export interface CommandOutput {
  readonly command: string
  readonly text: string
}

/** The command lines of every ```sh block of `markdown`, in order. */
export function runbookCommands(markdown: string): string[] {
  const commands: string[] = []
  for (const block of markdown.matchAll(/```sh\n([\s\S]*?)```/g)) {
    for (const line of (block[1] as string).split('\n')) {
      if (line.trim() === '' || line.trim().startsWith('#')) continue
      commands.push(line)
    }
  }
  return commands
}

function marker(command: string): string {
  return `+ ${command}`
}

/** A bash script that stops at the first failing command; stderr joins stdout. */
export function runbookScript(commands: readonly string[]): string {
  let script = 'set -euo pipefail\nexec 2>&1\n'
  for (const command of commands) script += `echo "${marker(command).replace(/["`$\\]/g, '\\$&')}"\n${command}\n`
  return script
}

/**
 * What the `nth` command beginning with `prefix` printed, cut out of the script's output by
 * the markers of that command and the next one.
 */
export function outputOf(output: string, commands: readonly string[], prefix: string, nth = 0): CommandOutput {
  const lines = output.split('\n')
  const starts: number[] = []
  let from = 0
  for (const command of commands) {
    const at = lines.indexOf(marker(command), from)
    if (at === -1) throw new Error(`the output has no marker for: ${command}`)
    starts.push(at)
    from = at + 1
  }
  const index = commands.map((command, i) => ({ command, i })).filter((c) => c.command.startsWith(prefix))[nth]?.i
  if (index === undefined) throw new Error(`the runbook has no command beginning with: ${prefix}`)
  const end = index + 1 < starts.length ? starts[index + 1] : lines.length
  return { command: commands[index] as string, text: lines.slice((starts[index] as number) + 1, end).join('\n') }
}
