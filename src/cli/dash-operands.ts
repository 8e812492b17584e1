import type { Command, Option } from 'commander'

/**
 * A kid as rekey prints it: base64url, so it may begin with `-` (`-o9DabQ...`) or even `--`.
 * A word of two dashes is taken for a kid only at a kid's length (16), so that a mistyped
 * long option still reads as one.
 */
const KID = /^(-[A-Za-z0-9_][A-Za-z0-9_-]{3,}|--[A-Za-z0-9_-]{14})$/

/** Help is no entry of `command.options`; it must never be read as a kid. */
const HELP = new Set(['-h', '--help'])

function knownFlag(options: readonly Option[], arg: string): Option | undefined {
  const name = arg.split('=')[0]
  return options.find((o) => o.long === name || o.short === name)
}

/**
 * Commander reads every word that starts with `-` as an option, so `rekey revoke -o9Dab...`
 * failed as an unknown option. For a command whose argument is named `kid`, a word that is
 * no option of the command or of the program and has the shape of a kid is moved behind
 * `--`, where commander takes it as the argument. Options keep working in any order.
 */
export function kidOperandsLast(program: Command, argv: readonly string[]): string[] {
  const globals = program.options
  let i = 0
  // Skip the global options (and their values) in front of the command name.
  while (i < argv.length && (argv[i] as string).startsWith('-') && argv[i] !== '--') {
    const flag = knownFlag(globals, argv[i] as string)
    i += flag !== undefined && (flag.required || flag.optional) && !(argv[i] as string).includes('=') ? 2 : 1
  }
  const command = program.commands.find((c) => c.name() === argv[i] || c.aliases().includes(argv[i] as string))
  if (command === undefined || !command.registeredArguments.some((a) => a.name() === 'kid')) return [...argv]
  const options = [...command.options, ...globals]
  const kept: string[] = argv.slice(0, i + 1)
  const moved: string[] = []
  for (let j = i + 1; j < argv.length; j++) {
    const arg = argv[j] as string
    if (arg === '--') {
      kept.push(...argv.slice(j))
      break
    }
    const flag = arg.startsWith('-') ? knownFlag(options, arg) : undefined
    if (flag !== undefined) {
      kept.push(arg)
      // The option's value is taken as it is, even when it begins with `-`.
      if ((flag.required || flag.optional) && !arg.includes('=') && j + 1 < argv.length) kept.push(argv[++j] as string)
    } else if (KID.test(arg) && !HELP.has(arg)) {
      moved.push(arg)
    } else {
      kept.push(arg)
    }
  }
  if (moved.length === 0) return kept
  return kept.includes('--') ? [...kept, ...moved] : [...kept, '--', ...moved]
}
