/**
 * PostgreSQL: `pg_dump -Fc` of the store's schema inside an exported snapshot, so the dump and
 * the row counts in the manifest see the same instant; the restore drill in a temporary
 * database; and `pg_restore --clean` into the store. The URL's password reaches the tools
 * through PGPASSWORD, never on a command line, and never appears in a message.
 */
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import pg from 'pg'
import { RekeyError } from '../../core/errors.ts'
import { maskLocation } from '../../store/errors.ts'
import { BackupError } from './backup-error.ts'
import { compareCounts, DATA_TABLES, type SnapshotFacts } from './sqlite-snapshot.ts'

/** The URL without its password, and the password for PGPASSWORD. */
function splitPassword(url: string): { url: string, password: string | undefined } {
  const parsed = new URL(url)
  const password = parsed.password === '' ? undefined : decodeURIComponent(parsed.password)
  parsed.password = ''
  return { url: parsed.toString(), password }
}

/** Runs a PostgreSQL client tool; ERR_CONFIG naming it when it is not installed. */
function runTool(tool: 'pg_dump' | 'pg_restore', args: readonly string[], url: string): Promise<void> {
  const { password } = splitPassword(url)
  return new Promise((resolve, reject) => {
    const env = { ...process.env, ...(password === undefined ? {} : { PGPASSWORD: password }) }
    const child = spawn(tool, [...args], { env, stdio: ['ignore', 'ignore', 'pipe'] })
    let stderr = ''
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => { if (stderr.length < 8192) stderr += chunk })
    child.once('error', (err) => {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        reject(new RekeyError('ERR_CONFIG', `${tool} was not found on PATH: install the PostgreSQL client tools (Debian: apt-get install postgresql-client), of the server's major version or newer`))
      } else reject(err)
    })
    child.once('close', (code) => {
      if (code === 0) resolve()
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
    throw new RekeyError('ERR_STORE_UNAVAILABLE', `cannot connect to ${maskLocation(url)}: ${(err as Error).message}`)
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
    await runTool('pg_dump', ['--format=custom', `--snapshot=${snapshot}`, `--schema=${schema}`, '--no-owner', '--no-acl', `--file=${outFile}`, `--dbname=${splitPassword(url).url}`], url)
    await client.query('COMMIT')
    return { ...found, schema }
  } finally {
    await client.end().catch(() => {})
  }
}

/** The URL of another database on the same server. */
function withDatabase(url: string, database: string): string {
  const parsed = new URL(url)
  parsed.pathname = `/${database}`
  return parsed.toString()
}

/**
 * The restore drill: restores the dump into a temporary database on the store's server,
 * compares schema version and row counts with the manifest, and drops the database.
 */
export async function checkPostgresDump(url: string, dump: string, schema: string, expected: SnapshotFacts): Promise<string[]> {
  const name = `rekey_verify_${randomBytes(6).toString('hex')}`
  const admin = await connect(url)
  try {
    try {
      await admin.query(`CREATE DATABASE ${name}`)
    } catch (err) {
      throw new RekeyError('ERR_CONFIG', `backup verify restores into a temporary database and could not create one on ${maskLocation(url)} (${(err as Error).message}); grant CREATEDB or verify against another server with --store`)
    }
    try {
      const target = withDatabase(url, name)
      try {
        await runTool('pg_restore', ['--exit-on-error', '--no-owner', '--no-acl', `--dbname=${splitPassword(target).url}`, dump], target)
      } catch (err) {
        if (err instanceof BackupError) return [`the dump does not restore: ${err.message}`]
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

/** `pg_restore --clean --if-exists --single-transaction` of the dump into the store's database. */
export async function restorePostgres(url: string, dump: string): Promise<void> {
  await runTool('pg_restore', ['--clean', '--if-exists', '--single-transaction', '--exit-on-error', '--no-owner', '--no-acl', `--dbname=${splitPassword(url).url}`, dump], url)
}
