/**
 * The three readers an env file must satisfy: rekey's parser, Node's (`process.loadEnvFile`,
 * the parser of `--env-file`) and the `dotenv` package.
 */
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import dotenv from 'dotenv'
import { parseEnv } from '../../src/config/env-file.ts'

/**
 * Node's reading, through process.loadEnvFile, without leaving anything in process.env.
 * loadEnvFile never overrides a variable already set (CI sets PORT), so every variable is
 * set aside first and put back afterwards.
 */
export function nodeLoad(file: string): Record<string, string> {
  const saved = { ...process.env }
  for (const key of Object.keys(process.env)) delete process.env[key]
  try {
    process.loadEnvFile(file)
    return { ...process.env } as Record<string, string>
  } finally {
    for (const key of Object.keys(process.env)) delete process.env[key]
    Object.assign(process.env, saved)
  }
}

/** Reads the file with all three and asserts they agree; returns the variables. */
export function readAll(file: string): Record<string, string> {
  const text = readFileSync(file, 'utf8')
  const ours = { ...parseEnv(text) }
  assert.deepEqual(nodeLoad(file), ours, `Node reads ${file} as rekey does`)
  assert.deepEqual({ ...dotenv.parse(text) }, ours, `dotenv reads ${file} as rekey does`)
  return ours
}
