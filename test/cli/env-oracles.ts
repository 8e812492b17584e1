/**
 * The three readers an env file must satisfy: rekey's parser, Node's (`process.loadEnvFile`,
 * the parser of `--env-file`) and the `dotenv` package.
 */
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import dotenv from 'dotenv'
import { parseEnv } from '../../src/config/env-file.ts'

/** Node's reading, through process.loadEnvFile, without leaving anything in process.env. */
export function nodeLoad(file: string): Record<string, string> {
  const before = new Set(Object.keys(process.env))
  process.loadEnvFile(file)
  const out: Record<string, string> = {}
  for (const key of Object.keys(process.env)) {
    if (before.has(key)) continue
    out[key] = process.env[key] as string
    delete process.env[key]
  }
  return out
}

/** Reads the file with all three and asserts they agree; returns the variables. */
export function readAll(file: string): Record<string, string> {
  const text = readFileSync(file, 'utf8')
  const ours = { ...parseEnv(text) }
  assert.deepEqual(nodeLoad(file), ours, `Node reads ${file} as rekey does`)
  assert.deepEqual({ ...dotenv.parse(text) }, ours, `dotenv reads ${file} as rekey does`)
  return ours
}
