#!/usr/bin/env -S node --
// ("--" stops Node from reading our --env-file option as its own.)
// The rekey CLI. In a checkout it runs the TypeScript sources (Node 24 strips their
// types); an installed package runs its compiled build.
import { existsSync } from 'node:fs'

const [major, minor] = process.versions.node.split('.').map(Number)
if (major < 22 || (major === 22 && minor < 12)) {
  process.stderr.write(`rekey: Node.js >= 22.12 is required (this is ${process.version}); in a checkout, run it with npx or an npm script, which use the pinned Node 24\n`)
  process.exit(2)
}
const source = new URL('../src/cli/main.ts', import.meta.url)
const entry = existsSync(source) && !source.pathname.includes('/node_modules/') ? source : new URL('../dist/cli/main.js', import.meta.url)
const { main } = await import(entry.href)
process.exitCode = await main(process.argv.slice(2))
