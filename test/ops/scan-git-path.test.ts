/**
 * Reading the paths of git's diff headers back: C-quoted names (escapes, octal UTF-8 bytes),
 * the TAB after a name with a space, and what cannot be read (null, never a wrong path).
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { diffGitPath, headerPath } from '../../src/ops/scan/git-path.ts'

test('quoted paths: letter escapes, \\" and \\\\, octal bytes decoded as UTF-8', () => {
  assert.equal(headerPath('"b/tab\\there.env"', 'b/'), 'tab\there.env')
  assert.equal(headerPath('"b/a\\nb\\r\\"c\\\\d"', 'b/'), 'a\nb\r"c\\d')
  assert.equal(headerPath('"b/caf\\303\\251 \\001.env"', 'b/'), 'café \u0001.env')
  assert.equal(headerPath('"new\\tname.env"', ''), 'new\tname.env')
})

test('unquoted paths: the TAB git appends after a name with a space is dropped', () => {
  assert.equal(headerPath('b/has space.env\t', 'b/'), 'has space.env')
  assert.equal(headerPath('b/é.env', 'b/'), 'é.env')
  assert.equal(headerPath('moved/x.env', ''), 'moved/x.env')
})

test('diff --git lines: quoted on either side, or plain with spaces', () => {
  assert.equal(diffGitPath('"a/tab\\there" "b/tab\\there"'), 'tab\there')
  assert.equal(diffGitPath('a/old "b/new\\nname"'), 'new\nname')
  assert.equal(diffGitPath('"a/old\\tname" b/new name'), 'new name')
  assert.equal(diffGitPath('a/x b/y b/x b/y'), 'x b/y', 'the same name twice, though it holds " b/"')
  assert.equal(diffGitPath('a/has space.env b/has space.env'), 'has space.env')
})

test('what cannot be read is null', () => {
  for (const text of ['"b/unterminated', '"b/bad \\q escape"', '"b/x" trailing', 'c/not-b.env', '"a/x"', '"b/"']) {
    assert.equal(headerPath(text, 'b/'), null, text)
  }
  assert.equal(diffGitPath('"a/unterminated b/x'), null)
  assert.equal(diffGitPath('no prefixes here'), null)
})
