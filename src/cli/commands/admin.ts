import { randomUUID } from 'node:crypto'
import type { Command } from 'commander'
import { RekeyError } from '../../core/errors.ts'
import { normalizeEmail } from '../../service/auth/auth.ts'
import { PASSWORD_MAX, PASSWORD_MIN, PasswordHasher } from '../../service/auth/passwords.ts'
import type { StoreOperations } from '../../store/store.ts'
import { CliExit, EXIT, type CliIo, type GlobalOptions } from '../context.ts'
import { printReport, withManaged } from '../managed.ts'

interface CreateOptions {
  email: string
  passwordEnv: string
  promoteExisting?: boolean
}

/** What `admin create` did. */
interface CreateReport {
  readonly id: string
  readonly email: string
  readonly role: 'admin'
  /** `created` a new user, `promoted` an existing one (password set, sessions ended), `unchanged`: already an admin with this password. */
  readonly action: 'created' | 'promoted' | 'unchanged'
  readonly sessionsEnded: number
}

function emailOf(value: string): string {
  const email = normalizeEmail(value)
  if (email === null) throw new CliExit(EXIT.USAGE, '--email must be an email address')
  return email
}

/** The password from the named variable, checked; never from the command line (`ps`, shell history). */
function passwordOf(io: CliIo, variable: string): string {
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(variable)) throw new CliExit(EXIT.USAGE, '--password-env must name an environment variable')
  const password = io.env[variable]
  if (password === undefined || password === '') throw new CliExit(EXIT.USAGE, `${variable} is not set: export the password in it first`)
  if (password.length < PASSWORD_MIN || password.length > PASSWORD_MAX) {
    throw new CliExit(EXIT.USAGE, `the password in ${variable} must be ${PASSWORD_MIN} to ${PASSWORD_MAX} characters`)
  }
  return password
}

/**
 * Ends every session of `userId` and refuses every access token and dashboard sign-in it
 * holds (the token version moves), inside the caller's transaction; the sessions ended.
 */
async function cutOff(tx: StoreOperations, userId: string, reason: string, now: number): Promise<number> {
  await tx.bumpTokenVersion(userId)
  return tx.revokeAllForUser(userId, reason, now)
}

/**
 * `rekey admin create` and `rekey admin remove`. Registration is open and emails are not
 * verified, so an account that already exists under the admin's email may belong to anyone:
 * it is never made admin silently. With `--promote-existing` it is, on purpose, and then the
 * operator's password replaces the one its registrant chose and every session and token it
 * held ends, so whoever registered it first is locked out.
 */
export function registerAdmin(program: Command, io: CliIo): void {
  const admin = program.command('admin').description('admin users of the admin API and dashboard')
  admin
    .command('create')
    .description('create an admin user; an existing user is made admin only with --promote-existing; the password comes from an environment variable')
    .requiredOption('--email <email>', 'the admin\'s email')
    .requiredOption('--password-env <var>', 'the environment variable holding the password')
    .option('--promote-existing', 'if a user with this email exists, make it admin with this password and end all its sessions and tokens')
    .addHelpText('after', '\nExamples:\n  read -rs ADMIN_PASSWORD && export ADMIN_PASSWORD\n  rekey admin create --email ops@example.com --password-env ADMIN_PASSWORD\n  rekey admin create --email ops@example.com --password-env ADMIN_PASSWORD --promote-existing')
    .action(async (options: CreateOptions, command: Command) => {
      const globals = command.optsWithGlobals<GlobalOptions & CreateOptions>()
      const email = emailOf(options.email)
      const password = passwordOf(io, options.passwordEnv)
      const report = await withManaged(io, globals, async ({ config, store, audit: log, actor }): Promise<CreateReport> => {
        const now = Date.now()
        const hasher = new PasswordHasher(config.argon2)
        const audit = (method: string, notes: string): ReturnType<typeof log.write> => log.write({
          at: now, secret: 'admin-user', operator: actor.operator, method, notes, requestId: null,
        })
        const existing = await store.getUserByEmail(email)
        if (existing !== null) {
          // An admin given its own password again: nothing to do (provisioning scripts re-run).
          if (existing.role === 'admin' && options.promoteExisting !== true && await hasher.verify(existing.passwordHash, password)) {
            return { id: existing.id, email, role: 'admin', action: 'unchanged', sessionsEnded: 0 }
          }
          if (options.promoteExisting !== true) {
            throw new RekeyError('ERR_CONFLICT', existing.role === 'admin'
              ? `${email} is already an admin with another password: nothing was changed. Add --promote-existing to set this password and end all its sessions`
              : `a user ${email} already exists and is not an admin (anyone can register, emails are not verified): nothing was changed. Add --promote-existing to make it admin with this password and end all its sessions and tokens`)
          }
          const passwordHash = await hasher.hash(password)
          const ended = await store.transaction(async (tx) => {
            await tx.setPasswordHash(existing.id, passwordHash)
            await tx.setRole(existing.id, 'admin')
            const n = await cutOff(tx, existing.id, 'admin-promote', now)
            const write = audit('admin-promote', `user ${existing.id} (${email}) made admin with a new password set by the operator; ${n} session(s) and every token ended`)
            await tx.appendAudit(write.event, write.computeHash)
            return n
          })
          return { id: existing.id, email, role: 'admin', action: 'promoted', sessionsEnded: ended }
        }
        const passwordHash = await hasher.hash(password)
        const id = randomUUID()
        await store.transaction(async (tx) => {
          await tx.createUser({ id, email, passwordHash, role: 'admin', createdAt: now })
          const write = audit('admin-create', `admin user ${id} (${email}) created`)
          await tx.appendAudit(write.event, write.computeHash)
        })
        return { id, email, role: 'admin', action: 'created', sessionsEnded: 0 }
      }, { create: true })
      printReport(io, globals, report, () => [
        report.action === 'created' ? `created admin ${report.email} (${report.id})`
          : report.action === 'promoted' ? `${report.email} (${report.id}) is an admin now: its password is the one in ${options.passwordEnv}; ${report.sessionsEnded} session(s) and every token it held were ended`
            : `${report.email} (${report.id}) is already an admin with this password; nothing changed`,
      ])
    })

  admin
    .command('remove')
    .description('take admin rights away from a user and end every session and token it holds')
    .requiredOption('--email <email>', 'the admin\'s email')
    .addHelpText('after', '\nExample:\n  rekey admin remove --email former-ops@example.com')
    .action(async (options: { email: string }, command: Command) => {
      const globals = command.optsWithGlobals<GlobalOptions>()
      const email = emailOf(options.email)
      const report = await withManaged(io, globals, async ({ store, audit: log, actor }) => {
        const now = Date.now()
        const user = await store.getUserByEmail(email)
        if (user === null) throw new CliExit(EXIT.USAGE, `no user has the email ${email}`)
        if (user.role !== 'admin') return { id: user.id, email, role: user.role, removed: false, sessionsEnded: 0 }
        const ended = await store.transaction(async (tx) => {
          await tx.setRole(user.id, 'user')
          const n = await cutOff(tx, user.id, 'admin-remove', now)
          await log.append({
            at: now, secret: 'admin-user', operator: actor.operator, method: 'admin-remove', requestId: null,
            notes: `admin rights of user ${user.id} (${email}) removed; ${n} session(s) and every token ended`,
          }, tx)
          return n
        })
        return { id: user.id, email, role: 'user', removed: true, sessionsEnded: ended }
      })
      printReport(io, globals, report, () => [report.removed
        ? `${report.email} (${report.id}) is no longer an admin; ${report.sessionsEnded} session(s) and every token it held were ended`
        : `${report.email} (${report.id}) is not an admin; nothing changed`])
    })
}
