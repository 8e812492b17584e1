import { randomUUID } from 'node:crypto'
import type { Command } from 'commander'
import { normalizeEmail } from '../../service/auth.ts'
import { PASSWORD_MAX, PASSWORD_MIN, PasswordHasher } from '../../service/passwords.ts'
import { CliExit, EXIT, type CliIo, type GlobalOptions } from '../context.ts'
import { printReport, withManaged } from '../managed.ts'

interface CreateOptions {
  email: string
  passwordEnv: string
}

/**
 * `rekey admin create`: an admin user for the admin API. The password is read from the named
 * environment variable, never from the command line (where `ps` and shell history see it).
 * An existing user with that email is made admin; their password is left as it is.
 */
export function registerAdmin(program: Command, io: CliIo): void {
  const admin = program.command('admin').description('admin users of the admin API')
  admin
    .command('create')
    .description('create an admin user (or make an existing user admin); the password comes from an environment variable')
    .requiredOption('--email <email>', 'the admin\'s email')
    .requiredOption('--password-env <var>', 'the environment variable holding the password')
    .addHelpText('after', '\nExample:\n  read -rs ADMIN_PASSWORD && export ADMIN_PASSWORD\n  rekey admin create --email ops@example.com --password-env ADMIN_PASSWORD')
    .action(async (options: CreateOptions, command: Command) => {
      const globals = command.optsWithGlobals<GlobalOptions & CreateOptions>()
      const email = normalizeEmail(options.email)
      if (email === null) throw new CliExit(EXIT.USAGE, '--email must be an email address')
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(options.passwordEnv)) throw new CliExit(EXIT.USAGE, '--password-env must name an environment variable')
      const password = io.env[options.passwordEnv]
      if (password === undefined || password === '') throw new CliExit(EXIT.USAGE, `${options.passwordEnv} is not set: export the password in it first`)
      if (password.length < PASSWORD_MIN || password.length > PASSWORD_MAX) {
        throw new CliExit(EXIT.USAGE, `the password in ${options.passwordEnv} must be ${PASSWORD_MIN} to ${PASSWORD_MAX} characters`)
      }
      const report = await withManaged(io, globals, async ({ config, store, audit: log, actor }) => {
        const now = Date.now()
        const audit = (notes: string): ReturnType<typeof log.write> => log.write({
          at: now, secret: 'admin-user', operator: actor.operator, method: 'admin-create', notes, requestId: null,
        })
        const existing = await store.getUserByEmail(email)
        if (existing !== null) {
          if (existing.role !== 'admin') await store.setRole(existing.id, 'admin', { audit: audit(`user ${existing.id} (${email}) made admin`) })
          return { id: existing.id, email, role: 'admin', created: false, passwordChanged: false }
        }
        const passwordHash = await new PasswordHasher(config.argon2).hash(password)
        const id = randomUUID()
        await store.transaction(async (tx) => {
          await tx.createUser({ id, email, passwordHash, role: 'admin', createdAt: now })
          const write = audit(`admin user ${id} (${email}) created`)
          await tx.appendAudit(write.event, write.computeHash)
        })
        return { id, email, role: 'admin', created: true, passwordChanged: true }
      }, { create: true })
      printReport(io, globals, report, () => [report.created
        ? `created admin ${report.email} (${report.id})`
        : `${report.email} is an admin now (existing user; password unchanged)`])
    })
}
