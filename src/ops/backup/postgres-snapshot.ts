/**
 * PostgreSQL: `pg_dump -Fc` of the store's schema inside an exported snapshot, so the dump and
 * the row counts in the manifest see the same instant; the restore drill in a temporary
 * database; and the restore into the store. The URL's password reaches the tools through
 * PGPASSWORD, never on a command line, and never appears in a message.
 *
 * A dump of a schema carries `CREATE SCHEMA` for it. Every database already has `public`, so
 * a dump of a store in `public` restored as is fails ("schema public already exists"): every
 * restore goes through the dump's table of contents (`pg_restore -l`), checks that it holds
 * only rekey's own objects, and leaves out the schema entry when the target has the schema.
 */
import { spawn } from 'node:child_process'
import { promises as fs } from 'node:fs'
import pg from 'pg'
import { RekeyError } from '../../core/errors.ts'
import { maskLocation } from '../../store/errors.ts'
import { mapPgError } from '../../store/postgres/pg-errors.ts'
import { BackupError } from './backup-error.ts'
import { onInterrupt } from './interrupt-cleanup.ts'
import { dropDeadVerifyDatabases, dropVerifyDatabaseOnInterrupt, lockVerifyDatabase, verifyDatabaseName } from './verify-database.ts'
import { foreignPostgresEntries, parseToc, type TocEntry } from './own-schema.ts'
import { compareCounts, DATA_TABLES, type SnapshotFacts } from './sqlite-snapshot.ts'

/**
 * The URL without its password, and the password for PGPASSWORD. The password is the one the
 * node driver uses: a `password` query parameter (the last one) before the URL's user info; it
 * leaves the query too, so it never reaches a command line (`ps`), where libpq would read it.
 */
function splitPassword(url: string): { url: string, password: string | undefined } {
  const parsed = new URL(url)
  const inQuery = parsed.searchParams.getAll('password').at(-1)
  parsed.searchParams.delete('password')
  const password = inQuery !== undefined && inQuery !== '' ? inQuery : parsed.password === '' ? undefined : decodeURIComponent(parsed.password)
  parsed.password = ''
  // The query as the node driver reads it (URLSearchParams: `+` is a space), written the way
  // libpq reads it (`+` is a plus): `?options=-c+search_path%3Dx`, what URLSearchParams itself
  // writes, would otherwise reach pg_dump as an unknown parameter `+search_path`.
  const query = [...parsed.searchParams].map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).join('&')
  parsed.search = query === '' ? '' : `?${query}`
  return { url: parsed.toString(), password }
}

/** Runs a PostgreSQL client tool and returns its stdout; ERR_CONFIG naming it when it is not installed. */
function runTool(tool: 'pg_dump' | 'pg_restore', args: readonly string[], url: string | null): Promise<string> {
  const password = url === null ? undefined : splitPassword(url).password
  return new Promise((resolve, reject) => {
    const env = { ...process.env, ...(password === undefined ? {} : { PGPASSWORD: password }) }
    const child = spawn(tool, [...args], { env, stdio: ['ignore', 'pipe', 'pipe'] })
    // Killed on an interrupt: a dump or a restore must not outlive the run that cleans up after it.
    let release: () => void = () => {}
    try {
      release = onInterrupt(null, () => { child.kill('SIGKILL') })
    } catch (err) {
      reject(err)
      return
    }
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => { if (stdout.length < 4 * 1024 * 1024) stdout += chunk })
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => { if (stderr.length < 8192) stderr += chunk })
    child.once('error', (err) => {
      release()
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        reject(new RekeyError('ERR_CONFIG', `${tool} was not found on PATH: install the PostgreSQL client tools (Debian: apt-get install postgresql-client), of the server's major version or newer`))
      } else reject(err)
    })
    child.once('close', (code) => {
      release()
      if (code === 0) resolve(stdout)
      else reject(new BackupError(`${tool} failed (exit ${code}): ${maskLocation(stderr.trim()).replace(/postgres(ql)?:\/\/[^\s@]*@/gi, 'postgres://***@')}`))
    })
  })
}

async function connect(url: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5000 })
  client.on('error', () => {})
  try {
    await client.connect()
  } catch (err) {
    const mapped = mapPgError(err, maskLocation(url))
    throw mapped instanceof RekeyError ? mapped : new RekeyError('ERR_STORE_UNAVAILABLE', `cannot connect to ${maskLocation(url)}: ${(err as Error).message}`)
  }
  return client
}

const quote = (ident: string): string => `"${ident.replace(/"/g, '""')}"`

async function schemaFacts(client: pg.Client, schema: string): Promise<SnapshotFacts> {
  const { rows } = await client.query<{ table_name: string }>(
    "SELECT table_name FROM information_schema.tables WHERE table_schema = $1 AND table_type = 'BASE TABLE' ORDER BY table_name", [schema])
  const rowCounts: Record<string, number> = {}
  for (const { table_name: t } of rows) {
    rowCounts[t] = Number((await client.query<{ n: string }>(`SELECT count(*) AS n FROM ${quote(schema)}.${quote(t)}`)).rows[0]?.n ?? 0)
  }
  const schemaVersion = 'schema_migrations' in rowCounts
    ? Number((await client.query<{ v: number | null }>(`SELECT max(version) AS v FROM ${quote(schema)}.schema_migrations`)).rows[0]?.v ?? 0)
    : 0
  return { schemaVersion, rowCounts }
}

/**
 * Dumps the store's schema (the URL's `current_schema()`) into `outFile` with `pg_dump -Fc`,
 * inside a REPEATABLE READ transaction whose snapshot pg_dump shares.
 */
export async function snapshotPostgres(url: string, outFile: string): Promise<SnapshotFacts & { schema: string }> {
  const client = await connect(url)
  try {
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY')
    const schema = (await client.query<{ s: string | null }>('SELECT current_schema() AS s')).rows[0]?.s
    if (schema === null || schema === undefined) throw new RekeyError('ERR_CONFIG', `${maskLocation(url)} has no current schema: the store is not there`)
    const snapshot = (await client.query<{ id: string }>('SELECT pg_export_snapshot() AS id')).rows[0]?.id as string
    const found = await schemaFacts(client, schema)
    if (!('schema_migrations' in found.rowCounts)) throw new RekeyError('ERR_CONFIG', `no rekey store in schema ${schema} of ${maskLocation(url)}`)
    await runTool('pg_dump', ['--format=custom', `--snapshot=${snapshot}`, `--schema="${schema}"`, '--no-owner', '--no-acl', `--file=${outFile}`, `--dbname=${splitPassword(url).url}`], url)
    await client.query('COMMIT')
    return { ...found, schema }
  } finally {
    await client.end().catch(() => {})
  }
}

/** The URL of another database on the same server (the query string, e.g. search_path, kept). */
function withDatabase(url: string, database: string): string {
  const parsed = new URL(url)
  parsed.pathname = `/${database}`
  return parsed.toString()
}

/** The table of contents of a dump (`pg_restore -l`). */
export async function dumpToc(dump: string): Promise<TocEntry[]> {
  return parseToc(await runTool('pg_restore', ['--list', dump], null))
}

/** BackupError naming the entries of the dump that are not rekey's own objects in `schema`. */
export function checkOwnEntries(entries: readonly TocEntry[], schema: string): void {
  const foreign = foreignPostgresEntries(entries, schema)
  if (foreign.length > 0) {
    throw new BackupError(`the dump holds objects that are not rekey's own, so it is refused before anything is restored: ${foreign.slice(0, 10).join(', ')}${foreign.length > 10 ? ` and ${foreign.length - 10} more` : ''}`)
  }
}

/**
 * The schema a connection to `url` creates its tables in: `current_schema()`, or, when the
 * search_path names a schema that does not exist yet, its first entry.
 */
async function targetSchema(client: pg.Client): Promise<{ schema: string, exists: boolean }> {
  const row = (await client.query<{ s: string | null, p: string }>("SELECT current_schema() AS s, current_setting('search_path') AS p")).rows[0]
  if (row?.s !== null && row?.s !== undefined) return { schema: row.s, exists: true }
  const first = (row?.p ?? '').split(',').map((x) => x.trim().replace(/^"(.*)"$/, '$1')).find((x) => x !== '' && x !== '$user')
  if (first === undefined) throw new RekeyError('ERR_CONFIG', 'the target database has no schema to restore into: set search_path in the URL (?options=-c%20search_path%3Dname)')
  return { schema: first, exists: false }
}

/**
 * Restores `dump` (of `schema`) into the database of `url`, whose search_path must lead to
 * that same schema: a list of the dump's entries (without the schema itself when the target
 * already has it) through `pg_restore --single-transaction`, all or nothing. With `clean`,
 * rekey's tables there are dropped first, in that same transaction.
 */
export async function restoreDump(url: string, dump: string, schema: string, entries: readonly TocEntry[], listFile: string, clean: boolean): Promise<void> {
  checkOwnEntries(entries, schema)
  const client = await connect(url)
  let target: { schema: string, exists: boolean }
  try {
    target = await targetSchema(client)
  } finally {
    await client.end().catch(() => {})
  }
  if (target.schema !== schema) {
    throw new RekeyError('ERR_CONFIG', `this backup is of schema ${schema} and ${maskLocation(url)} uses schema ${target.schema}: restore into a URL whose search_path is ${schema} (?options=-c%20search_path%3D${schema})`)
  }
  const keep = entries.filter((e) => !(target.exists && (e.kind === 'SCHEMA' || (e.kind === 'COMMENT' && e.name === `SCHEMA ${schema}`))))
  await fs.writeFile(listFile, `${keep.map((e) => e.line).join('\n')}\n`, { mode: 0o600 })
  await runTool('pg_restore', [
    ...(clean ? ['--clean', '--if-exists'] : []),
    '--single-transaction', '--exit-on-error', '--no-owner', '--no-acl', `--use-list=${listFile}`, `--dbname=${splitPassword(url).url}`, dump,
  ], url)
}

/**
 * The restore drill: restores the dump into a temporary database on the store's server (the
 * URL's search_path kept, so the dump's schema is created there or, for public, found),
 * compares schema version and row counts with the manifest, and drops the database.
 */
export async function checkPostgresDump(url: string, dump: string, schema: string, expected: SnapshotFacts, entries: readonly TocEntry[], listFile: string): Promise<string[]> {
  const name = verifyDatabaseName()
  const admin = await connect(url)
  // Registered before CREATE DATABASE: an interrupt while it runs still drops it.
  const release = dropVerifyDatabaseOnInterrupt(name, () => connect(url))
  try {
    try {
      // Held on `admin` for the drill's whole life: while it is, no later run drops the database.
      await lockVerifyDatabase(admin, name)
      await admin.query(`CREATE DATABASE ${name}`)
    } catch (err) {
      throw new RekeyError('ERR_CONFIG', `backup verify restores into a temporary database and could not create one on ${maskLocation(url)} (${(err as Error).message}); grant CREATEDB or verify against another server with --store`)
    }
    try {
      const target = withDatabase(url, name)
      try {
        await restoreDump(target, dump, schema, entries, listFile, false)
      } catch (err) {
        if (err instanceof BackupError && !/not rekey's own/.test(err.message)) return [`the dump does not restore: ${err.message}`]
        throw err
      }
      const client = await connect(target)
      try {
        const found = await schemaFacts(client, schema)
        const problems: string[] = []
        if (found.schemaVersion !== expected.schemaVersion) problems.push(`schema version ${found.schemaVersion}, the manifest says ${expected.schemaVersion}`)
        problems.push(...compareCounts(found.rowCounts, expected.rowCounts))
        return problems
      } finally {
        await client.end().catch(() => {})
      }
    } finally {
      await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).catch(() => {})
    }
  } finally {
    await admin.end().catch(() => {})
    release()
  }
}

/** Drops the drill databases dead runs left on the server of `url` (see `verify-database.ts`); their names. */
export async function dropDeadDrillDatabases(url: string): Promise<string[]> {
  const client = await connect(url)
  try {
    return await dropDeadVerifyDatabases(client)
  } finally {
    await client.end().catch(() => {})
  }
}

/** Rows in the data tables of `schema` on the target; 0 when the schema or tables are missing. */
export async function postgresDataRows(url: string, schema: string): Promise<number> {
  const client = await connect(url)
  try {
    const { rows } = await client.query<{ table_name: string }>('SELECT table_name FROM information_schema.tables WHERE table_schema = $1', [schema])
    const present = new Set(rows.map((r) => r.table_name))
    let total = 0
    for (const t of DATA_TABLES) {
      if (present.has(t)) total += Number((await client.query<{ n: string }>(`SELECT count(*) AS n FROM ${quote(schema)}.${quote(t)}`)).rows[0]?.n ?? 0)
    }
    return total
  } finally {
    await client.end().catch(() => {})
  }
}

/** Instances of the store in `schema` whose last heartbeat is at or after `since` (ms). */
export async function postgresLiveInstances(url: string, schema: string, since: number): Promise<LiveInstance[]> {
  const client = await connect(url)
  try {
    const exists = (await client.query('SELECT 1 FROM information_schema.tables WHERE table_schema = $1 AND table_name = $2', [schema, 'instances'])).rows.length > 0
    if (!exists) return []
    const { rows } = await client.query<{ instance_id: string, hostname: string, pid: number, last_seen: string }>(
      `SELECT instance_id, hostname, pid, last_seen FROM ${quote(schema)}.instances WHERE last_seen >= $1 ORDER BY instance_id`, [since])
    return rows.map((r) => ({ instanceId: r.instance_id, hostname: r.hostname, pid: Number(r.pid), lastSeen: Number(r.last_seen) }))
  } finally {
    await client.end().catch(() => {})
  }
}

/** A running instance, as its heartbeat row names it. */
export interface LiveInstance {
  readonly instanceId: string
  readonly hostname: string
  readonly pid: number
  readonly lastSeen: number
}

/** The schema `url` stores in (see {@link restoreDump}): the one a restore writes to. */
export async function postgresTargetSchema(url: string): Promise<string> {
  const client = await connect(url)
  try {
    return (await targetSchema(client)).schema
  } finally {
    await client.end().catch(() => {})
  }
}
