/**
 * The dashboard's static files (`dashboard/` at the package root: plain HTML, JS and CSS, no
 * build step). They live outside `src/` because tsc emits only `.ts` into `dist/`; the path is
 * resolved from this module's URL, which sits at the same depth in `src/` and `dist/`.
 */
import { createHash } from 'node:crypto'
import { promises as fs } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

/** Where the files are: `<package>/dashboard/`. */
export const DASHBOARD_DIR = fileURLToPath(new URL('../../../dashboard/', import.meta.url))

/** One file, read once at start. */
export interface Asset {
  readonly body: Buffer
  readonly type: string
  readonly etag: string
}

/** Served name → content type. Nothing else in the folder is served. */
const FILES = Object.freeze({
  'index.html': 'text/html; charset=utf-8',
  'app.js': 'text/javascript; charset=utf-8',
  'app.css': 'text/css; charset=utf-8',
} as const)

export type AssetName = keyof typeof FILES

/** Reads every file; throws (ENOENT) when the folder is incomplete. */
export async function loadAssets(dir: string = DASHBOARD_DIR): Promise<ReadonlyMap<AssetName, Asset>> {
  const assets = new Map<AssetName, Asset>()
  for (const [name, type] of Object.entries(FILES) as [AssetName, string][]) {
    const body = await fs.readFile(path.join(dir, name))
    assets.set(name, { body, type, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"` })
  }
  return assets
}
