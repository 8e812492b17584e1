// `prepare` (npm runs it on `npm install` in a checkout, and on the first `npx rekey` there):
// build dist/ only when a source is newer than it. A rebuild swaps dist/ while other rekey
// processes may be loading it; an up-to-date build is left alone.
import { spawnSync } from 'node:child_process'
import { existsSync, statSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { newestMtime } from '../bin/newest-mtime.js'

const root = fileURLToPath(new URL('..', import.meta.url))

const built = `${root}dist/cli/main.js`
const sources = Math.max(newestMtime(`${root}src`), ...['tsconfig.json', 'tsconfig.build.json', 'package.json'].map((f) => statSync(`${root}${f}`).mtimeMs))
if (existsSync(built) && existsSync(`${root}dist/index.js`) && statSync(built).mtimeMs >= sources) process.exit(0)
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm'
const result = spawnSync(npm, ['run', 'build'], { cwd: root, stdio: 'inherit' })
process.exit(result.status ?? 1)
