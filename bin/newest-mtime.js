// The newest modification time of any file under a directory: whether dist/ is older than the
// sources (bin/rekey.js runs the sources then; scripts/prepare.js rebuilds).
import { readdirSync, statSync } from 'node:fs'

export function newestMtime(dir) {
  let newest = 0
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const file = `${dir}/${entry.name}`
    newest = Math.max(newest, entry.isDirectory() ? newestMtime(file) : statSync(file).mtimeMs)
  }
  return newest
}
