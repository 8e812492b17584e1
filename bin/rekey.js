#!/usr/bin/env -S node --
// ("--" stops Node from reading our --env-file option as its own. `node bin/rekey.js` and
// `npx rekey` have no such guard: there, name the file with --env PATH or REKEY_ENV_FILE.)
// The rekey CLI. An installed package runs its compiled build; a checkout runs the build
// when it is newer than every source file, else the TypeScript sources (Node 24 strips
// their types, which costs a few hundred milliseconds at start).
import { existsSync, statSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { newestMtime } from './newest-mtime.js'

const [major, minor] = process.versions.node.split('.').map(Number)
if (major < 22 || (major === 22 && minor < 12)) {
  // The one failure format of the CLI (src/cli/failure.ts), written out here: this Node may not load it.
  const message = `Node.js >= 22.12 is required (this is ${process.version}); in a checkout, run it with npx or an npm script, which use the pinned Node 24`
  process.stderr.write(process.argv.includes('--json') ? `${JSON.stringify({ error: 'ERR_USAGE', message })}\n` : `rekey: ERR_USAGE: ${message}\n`)
  process.exit(2)
}

// Node 22 marks node:sqlite (rekey's embedded store) experimental and says so on stderr at
// every run; that one notice is dropped, every other warning is printed as usual.
const emitWarning = process.emitWarning
process.emitWarning = function (warning, ...rest) {
  const type = typeof rest[0] === 'string' ? rest[0] : rest[0]?.type
  if (type === 'ExperimentalWarning' && /\bSQLite\b/.test(String(warning?.message ?? warning))) return
  return emitWarning.call(process, warning, ...rest)
}

const built = new URL('../dist/cli/main.js', import.meta.url)
const source = new URL('../src/cli/main.ts', import.meta.url)
const useSource = existsSync(source) && !source.pathname.includes('/node_modules/') &&
  (!existsSync(built) || statSync(built).mtimeMs < newestMtime(fileURLToPath(new URL('../src', import.meta.url))))
const { main } = await import((useSource ? source : built).href)
process.exitCode = await main(process.argv.slice(2))
