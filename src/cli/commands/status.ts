import type { Command } from 'commander'
import { envLayout, type EnvSecret } from '../../core/env-rotation.ts'
import { readEnvFile } from '../../service/env-file.ts'
import { CliExit, EXIT, type CliIo, type GlobalOptions } from '../context.ts'
import { describeEnvSecret, requireEnvFile } from '../env-mode.ts'

/** `rekey status`: keys and states, rotation phase and when finalize becomes safe. */
export function registerStatus(program: Command, io: CliIo): void {
  program
    .command('status')
    .description('keys and their states, the rotation phase, and when finalize becomes safe')
    .addHelpText('after', '\nExamples:\n  rekey --env-file .env status\n  rekey --env-file .env --json status')
    .action(async (_options: unknown, command: Command) => {
      const globals = command.optsWithGlobals<GlobalOptions>()
      requireEnvFile(globals, 'status')
      const { env, exists } = await readEnvFile(globals.envFile as string)
      if (!exists) throw new CliExit(EXIT.USAGE, `${globals.envFile} does not exist`)
      const secrets: EnvSecret[] = []
      if (env.JWT_SECRET !== undefined || env.JWT_SECRET_CURRENT !== undefined || env.JWT_SECRET_NEW !== undefined) secrets.push('jwt')
      if (env.JWT_ACCESS_SECRET !== undefined) secrets.push('access')
      if (env.JWT_REFRESH_SECRET !== undefined) secrets.push('refresh')
      const report = secrets.map((s) => describeEnvSecret(env, envLayout(env, s)))
      if (globals.json === true) {
        io.stdout(`${JSON.stringify({ file: globals.envFile, secrets: report })}\n`)
        return
      }
      if (report.length === 0) io.stdout(`no JWT secret in ${globals.envFile} (create one with: rekey --env-file ${globals.envFile} gen --var JWT_SECRET)\n`)
      for (const s of report) {
        io.stdout(`${String(s.secret)}  phase: ${String(s.phase)}  convention: ${String(s.convention)}\n`)
        for (const key of s.keys as { kid: string, state: string, variable: string }[]) io.stdout(`  ${key.state.padEnd(8)} ${key.kid}  (${key.variable})\n`)
        if (s.rotatedAt !== null) io.stdout(`  rotated at       ${String(s.rotatedAt)}\n`)
        if (s.finalizeSafeAt !== null) io.stdout(`  finalize safe at ${String(s.finalizeSafeAt)}\n`)
      }
    })
}
