/**
 * Reading and rewriting .env files without losing anything people put in them.
 *
 * A rewrite keeps comments, blank lines, order, `export` prefixes, quoting and every other
 * variable, and is refused before anything is written when rekey's parser, Node's
 * `--env-file` and dotenv would read the file (before or after) differently, or when a
 * variable it changes is assigned twice (see env-syntax.ts). The write is atomic (temp file
 * beside the real file, fsync, rename) at a symlink's target, keeps the file's owner, group
 * and mode, keeps backup generations (env-backups.ts), and is read back: if the file does
 * not read as planned, the original is put back.
 */
import { randomBytes } from 'node:crypto'
import { constants, promises as fs } from 'node:fs'
import path from 'node:path'
import { RekeyError } from '../core/errors.ts'
import { DEFAULT_ENV_BACKUPS, rotateBackups } from './env-backups.ts'
import { disagreements, nodeReading, dotenvReading, parseEnvDocument, renderAssignments, valuesOf, type EnvDocument } from './env-syntax.ts'

/** Parses env-file text into variables (last assignment wins, as in Node and dotenv). */
export function parseEnv(text: string): Record<string, string> {
  return valuesOf(parseEnvDocument(text))
}

/** A change to an env file: variables to set (in place, or appended), to remove, and lines to append. */
export interface EnvChange {
  set?: Record<string, string>
  remove?: readonly string[]
  /** Whole lines (comments) appended when the file does not have them yet. */
  append?: readonly string[]
  /** Whole lines (comments) removed. */
  drop?: readonly string[]
}

/** How many combinations of written forms a rewrite tries before it leaves the choice to the agreement check. */
const MAX_FORM_COMBINATIONS = 256

/**
 * Applies a change to env-file text, keeping everything else as it was. Throws `ERR_CONFIG`
 * for a value with no safe written form. Each changed line takes its best form that keeps the
 * whole file reading alike in rekey, Node and dotenv (a `'` written on one line can end a
 * quote dotenv still holds open from an earlier one); when no combination does, the first
 * forms are used and {@link assertEnvAgreement} refuses the result, naming the lines.
 */
export function applyEnvChange(text: string, change: EnvChange, file = '.env'): string {
  const doc = parseEnvDocument(text)
  const set = new Map(Object.entries(change.set ?? {}))
  const remove = new Set(change.remove ?? [])
  const render = (key: string, value: string, prefix: string, quote: Parameters<typeof renderAssignments>[3], line: number): string[] => {
    const forms = renderAssignments(prefix, key, value, quote)
    if (forms.length === 0) {
      // Name the line the value comes from (a moved secret), else where it would go.
      const source = doc.entries.find((e) => e.value === value)?.line ?? line
      throw new RekeyError('ERR_CONFIG', `${file} line ${source}: the value for ${key} has no written form that rekey, Node's --env-file and dotenv read alike (it needs quotes and holds ', " and \` together, or a line break, a carriage return or a NUL): nothing was written; change it by hand`)
    }
    return forms
  }
  const drop = new Set(change.drop ?? [])
  // Each slot is one output line: fixed text, or the written forms of a changed assignment.
  const slots: Array<string | { forms: string[], tail: string }> = []
  const keep = (lines: readonly string[]): string[] => lines.filter((l) => !drop.has(l))
  let next = 0
  for (const entry of doc.entries) {
    slots.push(...keep(doc.lines.slice(next, entry.line - 1)))
    next = entry.lastLine
    if (set.has(entry.key)) {
      // The line's comment stays with it (`JWT_SECRET=... # signing key`); the read-back check covers it.
      slots.push({ forms: render(entry.key, set.get(entry.key) as string, entry.prefix, entry.quote, entry.line), tail: entry.comment === undefined ? '' : ` ${entry.comment}` })
      set.delete(entry.key)
    } else if (!remove.has(entry.key)) {
      slots.push(...doc.lines.slice(entry.line - 1, entry.lastLine))
    }
  }
  slots.push(...keep(doc.lines.slice(next)))
  for (const [key, value] of set) slots.push({ forms: render(key, value, '', '', slots.length + 1), tail: '' })
  const appended = (change.append ?? []).filter((line, i, all) => all.indexOf(line) === i && !slots.includes(line))
  const textOf = (choice: readonly number[]): string => {
    let k = 0
    const out = slots.map((slot) => typeof slot === 'string' ? slot : `${slot.forms[choice[k++] as number]}${slot.tail}`).concat(appended)
    return out.length === 0 ? '' : `${out.join(doc.eol)}${doc.eol}`
  }
  const changed = slots.filter((slot) => typeof slot !== 'string')
  const first = textOf(changed.map(() => 0))
  if (disagreements(parseEnvDocument(first), first).length === 0) return first
  // Odometer over the forms of the changed lines, best forms first; the budget bounds the search.
  const choice = changed.map(() => 0)
  for (let tried = 1; tried < MAX_FORM_COMBINATIONS; tried++) {
    let i = choice.length - 1
    while (i >= 0 && (choice[i] as number) + 1 >= (changed[i] as { forms: string[] }).forms.length) choice[i--] = 0
    if (i < 0) break
    choice[i] = (choice[i] as number) + 1
    const candidate = textOf(choice)
    if (disagreements(parseEnvDocument(candidate), candidate).length === 0) return candidate
  }
  return first
}

/** An env file as read: its text, variables and parsed document. */
export interface EnvFileRead {
  readonly text: string
  readonly env: Record<string, string>
  readonly exists: boolean
  readonly doc: EnvDocument
}

const STRICT_UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })

/**
 * The text of an env file's bytes, refused (`ERR_CONFIG`, naming the first bad line) unless
 * they are valid UTF-8: a lenient decode turns a stray byte into U+FFFD, and a rewrite would
 * then write that replacement into a variable rekey was never asked to change.
 */
export function decodeEnvFile(file: string, bytes: Uint8Array): string {
  // process.env cannot hold a NUL: Node's --env-file and process.loadEnvFile cut the value
  // there while util.parseEnv, dotenv and rekey read on, so no agreement check can see it.
  const nul = bytes.indexOf(0)
  if (nul !== -1) {
    const line = bytes.subarray(0, nul).filter((b) => b === 0x0a).length + 1
    throw new RekeyError('ERR_CONFIG', `${file} line ${line} holds a NUL byte, which the app (node --env-file, process.loadEnvFile) reads as the end of the value while rekey and dotenv read on: nothing was read or written; remove it`)
  }
  try {
    return STRICT_UTF8.decode(bytes)
  } catch {
    let line = 1
    let start = 0
    for (let at = 0; at <= bytes.length; at++) {
      if (at < bytes.length && bytes[at] !== 0x0a) continue
      try {
        STRICT_UTF8.decode(bytes.subarray(start, at))
      } catch {
        break
      }
      line++
      start = at + 1
    }
    throw new RekeyError('ERR_CONFIG', `${file} is not valid UTF-8 (line ${line}): nothing was read or written; save the file as UTF-8`)
  }
}

/** Reads an env file; a missing file reads as empty. No agreement check (see {@link readEnvFileStrict}). */
export async function readEnvFile(file: string): Promise<EnvFileRead> {
  try {
    // Only a regular file: a device (/dev/null), a FIFO or a directory would be replaced by a
    // new file holding a secret (or hang the read), never rewritten in place.
    const stat = await fs.stat(file)
    if (!stat.isFile()) throw new RekeyError('ERR_CONFIG', `${file} is not a regular file (${stat.isDirectory() ? 'a directory' : 'a device, socket or FIFO'}): name the .env file the app reads`)
    const text = decodeEnvFile(file, await fs.readFile(file))
    const doc = parseEnvDocument(text)
    return { text, env: valuesOf(doc), exists: true, doc }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { text: '', env: {}, exists: false, doc: parseEnvDocument('') }
    throw err
  }
}

/** Refuses (`ERR_CONFIG`) a file that rekey, Node and dotenv read differently, naming each line. */
export function assertEnvAgreement(file: string, doc: EnvDocument, text: string): void {
  const problems = disagreements(doc, text)
  if (problems.length === 0) return
  const list = problems.slice(0, 5).map((p) => `line ${p.line}: ${p.message}`)
  if (problems.length > 5) list.push(`and ${problems.length - 5} more`)
  throw new RekeyError('ERR_CONFIG', `${file} cannot be rewritten safely: ${list.join('; ')}. Nothing was written; fix those lines so every parser reads them alike`, { problems: list })
}

/** Refuses (`ERR_CONFIG`) a file that assigns any of `names` more than once, naming the lines. */
export function assertSingleAssignments(file: string, doc: EnvDocument, names: Iterable<string>): void {
  const wanted = new Set(names)
  const lines = new Map<string, number[]>()
  for (const entry of doc.entries) if (wanted.has(entry.key)) lines.set(entry.key, [...(lines.get(entry.key) ?? []), entry.line])
  const twice = [...lines].filter(([, at]) => at.length > 1)
  if (twice.length === 0) return
  const list = twice.map(([key, at]) => `${key} is assigned on lines ${at.join(' and ')} (the last one wins in every parser)`)
  throw new RekeyError('ERR_CONFIG', `${file}: ${list.join('; ')}: keep one assignment of each; nothing was written`, { problems: list })
}

/** Reads an env file and refuses it unless rekey, Node and dotenv agree on every variable. */
export async function readEnvFileStrict(file: string, single: Iterable<string> = []): Promise<EnvFileRead> {
  const read = await readEnvFile(file)
  assertEnvAgreement(file, read.doc, read.text)
  assertSingleAssignments(file, read.doc, single)
  return read
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

/** Owner, group and permission bits to give a rewritten file. */
export interface FileAttributes {
  readonly mode: number
  readonly uid?: number
  readonly gid?: number
}

/**
 * Writes a file atomically: temp file in the same directory (created 0600, so the text is
 * never readable by others while it is written), owner and mode set, fsync, rename, fsync
 * the directory. Returns warnings (an owner that could not be kept).
 */
async function writeAtomic(file: string, text: string, attrs: FileAttributes): Promise<string[]> {
  const warnings: string[] = []
  const dir = path.dirname(path.resolve(file))
  const temp = path.join(dir, `.${path.basename(file)}.${randomBytes(6).toString('hex')}.tmp`)
  const handle = await fs.open(temp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600)
  try {
    await handle.writeFile(text, 'utf8')
    if (attrs.uid !== undefined && attrs.gid !== undefined && (attrs.uid !== process.getuid?.() || attrs.gid !== process.getgid?.())) {
      try {
        await handle.chown(attrs.uid, attrs.gid)
      } catch {
        warnings.push(`${file}: could not keep its owner ${attrs.uid}:${attrs.gid} (run rekey as that user or as root)`)
      }
    }
    await handle.chmod(attrs.mode)
    await handle.sync()
  } catch (err) {
    await handle.close()
    await fs.rm(temp, { force: true })
    throw err
  }
  await handle.close()
  try {
    await fs.rename(temp, file)
  } catch (err) {
    await fs.rm(temp, { force: true })
    throw err
  }
  await syncDirectory(dir)
  return warnings
}

/** Writes a file holding secrets: temp file in the same directory, 0600, fsync, rename, fsync the directory. */
export async function writeSecretFileAtomic(file: string, text: string): Promise<void> {
  await writeAtomic(file, text, { mode: 0o600 })
}

/** The file a rewrite of `file` writes: the target of a symlink (followed to the end), else `file`. */
export async function realTargetOf(file: string): Promise<string> {
  let current = path.resolve(file)
  for (let hops = 0; hops < 40; hops++) {
    let stat
    try {
      stat = await fs.lstat(current)
    } catch {
      return current
    }
    if (!stat.isSymbolicLink()) return current
    current = path.resolve(path.dirname(current), await fs.readlink(current))
  }
  throw new RekeyError('ERR_CONFIG', `${file}: too many levels of symbolic links`)
}

/** The owner, group and mode a rewrite of `target` keeps; a new file is 0600. */
async function attributesOf(target: string): Promise<FileAttributes & { exists: boolean }> {
  try {
    const stat = await fs.stat(target)
    return { mode: stat.mode & 0o7777, uid: stat.uid, gid: stat.gid, exists: true }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { mode: 0o600, exists: false }
    throw err
  }
}

/** Puts text back into an env file (at its target, keeping owner, group and mode). */
export async function restoreEnvFile(file: string, text: string): Promise<void> {
  const target = await realTargetOf(file)
  await writeAtomic(target, text, await attributesOf(target))
}

/** Options of {@link updateEnvFile}. */
export interface EnvWriteOptions {
  /** Backup generations to keep. Default {@link DEFAULT_ENV_BACKUPS} (5). */
  readonly backups?: number
  /** More variables that must be assigned at most once (the secret family being changed). */
  readonly single?: Iterable<string>
  /**
   * Checked on the file as read back after the write (by rekey's parser; Node's and dotenv's
   * already agree): a message means the write did not do what was meant, the original is put
   * back and the call fails with it.
   */
  readonly verify?: (after: Readonly<Record<string, string>>) => string | undefined
  /** The text the caller planned from: the write is refused if the file no longer holds it. */
  readonly expectText?: string
}

/** What a rewrite did. */
export interface EnvWriteResult {
  readonly before: Record<string, string>
  readonly after: Record<string, string>
  /** The file written: `file`, or a symlink's target. */
  readonly target: string
  /** The backup of the old content (generation 1), or null for a new file. */
  readonly backup: string | null
  /** The mode the file has (kept from before; 0600 for a new file). */
  readonly mode: number
  /** Things the operator should know (a group- or world-readable file, an owner not kept). */
  readonly warnings: readonly string[]
}

/** The variables in which two readings differ, among `keys`. */
function differing(a: Readonly<Record<string, string>>, b: Readonly<Record<string, string>>, keys: Iterable<string>): string[] {
  return [...keys].filter((k) => a[k] !== b[k])
}

/**
 * Applies a change to an env file. Every check runs before anything is written: the file and
 * the result must read alike in rekey, Node and dotenv, with the changed variables assigned
 * once, every set variable reading its new value, every other variable its old one. Then a
 * backup generation is kept, the file is replaced atomically at its real path with its owner,
 * group and mode, and read back; a read-back that differs from the plan (or that `verify`
 * refuses) puts the original back and fails with `ERR_CONFLICT`.
 */
export async function updateEnvFile(file: string, change: EnvChange, options: EnvWriteOptions = {}): Promise<EnvWriteResult> {
  const target = await realTargetOf(file)
  const { text, env, exists, doc } = await readEnvFile(target)
  if (options.expectText !== undefined && options.expectText !== text) {
    throw new RekeyError('ERR_CONFLICT', `${file} changed while rekey was working on it: nothing was written; run the command again`)
  }
  const set = change.set ?? {}
  const remove = change.remove ?? []
  assertEnvAgreement(file, doc, text)
  assertSingleAssignments(file, doc, [...Object.keys(set), ...remove, ...(options.single ?? [])])
  const next = applyEnvChange(text, change, file)
  const nextDoc = parseEnvDocument(next)
  assertEnvAgreement(`${file} (as rekey would write it)`, nextDoc, next)
  const planned: Record<string, string> = { ...env, ...set }
  for (const key of remove) if (!(key in set)) delete planned[key]
  const predicted = valuesOf(nextDoc)
  const wrong = differing(predicted, planned, new Set([...Object.keys(predicted), ...Object.keys(planned)]))
  if (wrong.length > 0) throw new RekeyError('ERR_CONFIG', `${file}: rewriting would change ${wrong.join(', ')} in a way rekey did not plan: nothing was written`)

  const attrs = await attributesOf(target)
  const warnings: string[] = []
  if ((attrs.mode & 0o077) !== 0) {
    warnings.push(`${file} is readable by ${(attrs.mode & 0o007) !== 0 ? 'everyone on this machine' : 'its group'} (mode 0${attrs.mode.toString(8)}); rekey kept that mode (chmod 600 it if only its owner needs to read it)`)
  }
  // A last look: another writer since the read would be silently overwritten.
  const current = exists ? await fs.readFile(target, 'utf8').catch(() => null) : null
  if (exists && current !== text) throw new RekeyError('ERR_CONFLICT', `${file} changed while rekey was working on it: nothing was written; run the command again`)
  const backup = exists ? await rotateBackups(target, text, options.backups ?? DEFAULT_ENV_BACKUPS, writeSecretFileAtomic) : null
  warnings.push(...await writeAtomic(target, next, attrs))

  const back = await fs.readFile(target, 'utf8')
  const after = parseEnv(back)
  const readers = [after, nodeReading(back), dotenvReading(back)]
  const keys = new Set(readers.flatMap((r) => Object.keys(r)).concat(Object.keys(planned)))
  const mismatch = readers.flatMap((r) => differing(r, planned, keys))
  const refused = mismatch.length > 0 ? `it reads ${[...new Set(mismatch)].join(', ')} other than planned` : options.verify?.(after)
  if (refused !== undefined) {
    if (exists) await writeAtomic(target, text, attrs)
    else await fs.rm(target, { force: true })
    throw new RekeyError('ERR_CONFLICT', `${file} as written was wrong (${refused}): the original was put back`)
  }
  return { before: env, after, target, backup, mode: attrs.mode, warnings }
}
