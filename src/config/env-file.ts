/**
 * Reading and rewriting .env files without losing anything people put in them.
 *
 * A rewrite keeps comments, blank lines, order, `export` prefixes, quoting and every
 * other variable; it is atomic (temp file in the same directory, fsync, rename), the
 * new file is 0600, and the old one is kept beside it as `<file>.bak` (0600).
 */
import { randomBytes } from 'node:crypto'
import { constants, promises as fs } from 'node:fs'
import path from 'node:path'

interface Line {
  raw: string
  key?: string
  value?: string
  quote?: '"' | "'" | ''
  prefix?: string
}

const ASSIGNMENT = /^(\s*(?:export\s+)?)([A-Za-z_][A-Za-z0-9_.]*)\s*=\s*(.*)$/

function unquote(rest: string): { value: string, quote: '"' | "'" | '' } {
  const first = rest[0]
  if (first === '"' || first === "'") {
    const end = rest.indexOf(first, 1)
    if (end > 0) {
      const inner = rest.slice(1, end)
      return { value: first === '"' ? inner.replace(/\\n/g, '\n').replace(/\\"/g, '"').replace(/\\\\/g, '\\') : inner, quote: first }
    }
  }
  // Unquoted: a # after whitespace starts a comment.
  const hash = rest.search(/\s#/)
  return { value: (hash >= 0 ? rest.slice(0, hash) : rest).trim(), quote: '' }
}

function parseLines(text: string): Line[] {
  const lines = text.split(/\r?\n/)
  if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop()
  return lines.map((raw) => {
    const match = ASSIGNMENT.exec(raw)
    if (match === null || raw.trimStart().startsWith('#')) return { raw }
    const { value, quote } = unquote(match[3] ?? '')
    return { raw, key: match[2], value, quote, prefix: match[1] ?? '' }
  })
}

/** Parses env-file text into variables (last assignment wins, as dotenv does not; we refuse duplicates elsewhere). */
export function parseEnv(text: string): Record<string, string> {
  const env: Record<string, string> = {}
  for (const line of parseLines(text)) {
    if (line.key !== undefined) env[line.key] = line.value ?? ''
  }
  return env
}

function render(key: string, value: string, quote: Line['quote'], prefix: string): string {
  if (quote === "'" && !value.includes("'")) return `${prefix}${key}='${value}'`
  if (quote === '"' || /[\s#"'\\]/.test(value)) {
    return `${prefix}${key}="${value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`
  }
  return `${prefix}${key}=${value}`
}

/** A change to an env file: variables to set (in place, or appended) and to remove. */
export interface EnvChange {
  set?: Record<string, string>
  remove?: readonly string[]
}

/** Applies a change to env-file text, keeping everything else as it was. */
export function applyEnvChange(text: string, change: EnvChange): string {
  const lines = parseLines(text)
  const set = new Map(Object.entries(change.set ?? {}))
  const remove = new Set(change.remove ?? [])
  const out: string[] = []
  for (const line of lines) {
    if (line.key !== undefined && remove.has(line.key) && !set.has(line.key)) continue
    if (line.key !== undefined && set.has(line.key)) {
      out.push(render(line.key, set.get(line.key) as string, line.quote, line.prefix ?? ''))
      set.delete(line.key)
      continue
    }
    out.push(line.raw)
  }
  for (const [key, value] of set) out.push(render(key, value, '', ''))
  return out.length === 0 ? '' : `${out.join('\n')}\n`
}

/** Reads an env file; a missing file reads as empty. */
export async function readEnvFile(file: string): Promise<{ text: string, env: Record<string, string>, exists: boolean }> {
  try {
    const text = await fs.readFile(file, 'utf8')
    return { text, env: parseEnv(text), exists: true }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { text: '', env: {}, exists: false }
    throw err
  }
}

/** fsyncs a directory, so a rename or link in it survives a crash. */
export async function syncDirectory(dir: string): Promise<void> {
  const handle = await fs.open(dir, 'r')
  try {
    await handle.sync()
  } finally {
    await handle.close()
  }
}

/** Writes a file holding secrets: temp file in the same directory, 0600, fsync, rename, fsync the directory. */
export async function writeSecretFileAtomic(file: string, text: string): Promise<void> {
  const dir = path.dirname(path.resolve(file))
  const temp = path.join(dir, `.${path.basename(file)}.${randomBytes(6).toString('hex')}.tmp`)
  const handle = await fs.open(temp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600)
  try {
    await handle.writeFile(text, 'utf8')
    await handle.sync()
  } finally {
    await handle.close()
  }
  try {
    await fs.rename(temp, file)
  } catch (err) {
    await fs.rm(temp, { force: true })
    throw err
  }
  await fs.chmod(file, 0o600)
  await syncDirectory(dir)
}

/**
 * Applies a change to an env file: the old file is kept as `<file>.bak` and the new one
 * replaces it atomically. Returns the variables before and after.
 */
export async function updateEnvFile(file: string, change: EnvChange): Promise<{ before: Record<string, string>, after: Record<string, string> }> {
  const { text, env, exists } = await readEnvFile(file)
  const next = applyEnvChange(text, change)
  if (exists) await writeSecretFileAtomic(`${file}.bak`, text)
  await writeSecretFileAtomic(file, next)
  return { before: env, after: parseEnv(next) }
}
