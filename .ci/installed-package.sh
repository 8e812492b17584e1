#!/usr/bin/env bash
# Works installed, not only in the clone: pack the package as npm publishes it, install the
# tarball into a new app, and use it the way the README says, on Node 22 LTS and Node 24 (both
# from the npm registry's `node` package). Called from .ci/run after the build.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
WORK=$(mktemp -d "${TMPDIR:-/tmp}/rekey-installed-XXXXXX")
[ "${REKEY_KEEP_WORK:-}" = 1 ] || trap 'rm -rf "$WORK"' EXIT

# dist/ is built by `npm test`; --ignore-scripts keeps pack from building it a second time.
test -f dist/index.js
TARBALL=$(npm pack --ignore-scripts --silent --pack-destination "$WORK" | tail -1)
mkdir "$WORK/app"
cd "$WORK/app"
npm init -y >/dev/null
npm pkg set type=module
# As an app installs it (optional dependencies included: @node-rs/argon2 ships its binary as one).
npm install --no-audit --no-fund --prefer-offline "$WORK/$TARBALL" express fastify >/dev/null

cat > check.mjs <<'JS'
import assert from 'node:assert/strict'
import express from 'express'
import Fastify from 'fastify'
import { Keyring, generateSecret } from 'rekey'
import { requireAuth } from 'rekey/express'
import { rekeyAuth } from 'rekey/fastify'

const keyring = Keyring.fromEnv({ JWT_SECRET: generateSecret() })
const token = keyring.sign({ sub: 'u1' }, { expiresIn: '5m' })
assert.equal(keyring.verify(token).payload.sub, 'u1')

const app = express()
app.get('/me', requireAuth({ keyring }), (req, res) => res.json(req.auth))
const server = app.listen(0, '127.0.0.1')
await new Promise((resolve) => server.once('listening', resolve))
const base = `http://127.0.0.1:${server.address().port}`
assert.equal((await fetch(`${base}/me`, { headers: { authorization: `Bearer ${token}` } })).status, 200)
assert.equal((await fetch(`${base}/me`)).status, 401)
server.close()

const fastify = Fastify()
await fastify.register(rekeyAuth, { keyring })
fastify.get('/me', { onRequest: fastify.requireAuth }, async (request) => request.auth)
assert.equal((await fastify.inject({ url: '/me', headers: { authorization: `Bearer ${token}` } })).statusCode, 200)
assert.equal((await fastify.inject({ url: '/me' })).statusCode, 401)
await fastify.close()
console.log(`installed rekey works on Node ${process.version}`)
JS

VERSION=$(node -p "require('$ROOT/package.json').version")
ORIGINAL_PATH=$PATH
for NODE in node@22 pinned; do
  # Node 22 LTS: the registry's `node` package through npx (its install script fetches the
  # binary; no --allow-scripts: npm 11.19 passes that flag on to the nested install the script
  # runs, which refuses it with EALLOWSCRIPTS). Node 24: the same package, as this repository pins it
  # (the `node` devDependency, installed by `npm ci`). Its bin directory goes first on PATH,
  # so that npx, rekey's `#!/usr/bin/env node` and node all use it.
  if [ "$NODE" = pinned ]; then
    BIN=$(dirname "$(readlink -f "$ROOT/node_modules/.bin/node")")
  else
    BIN=$(npx --yes --package="$NODE" --call 'dirname "$(command -v node)"' | tail -1)
    "$BIN/node" --version | grep -q '^v22\.' || { echo "node@22 from the registry did not install" >&2; exit 1; }
  fi
  export PATH="$BIN:$ORIGINAL_PATH"
  echo "installed package on $(node --version)"
  test "$(npx rekey --version)" = "$VERSION"
  SECRET=$(npx rekey gen)
  test "${#SECRET}" -ge 64
  node check.mjs
  # The embedded SQLite store on Node 22: no ExperimentalWarning on stderr (issue 15 item 3).
  rm -rf .rekey .env .env.bak*
  printf 'JWT_SECRET=%s\n' "$SECRET" > .env
  npx rekey --env .env rotate 2> rotate.err >/dev/null || { cat rotate.err >&2; exit 1; }
  if grep -q 'Warning' rotate.err; then cat rotate.err >&2; echo "a warning on stderr" >&2; exit 1; fi
  test -f .rekey/rekey.db
done

# Installed without optional dependencies (`--omit=optional`: no argon2 binary), every command
# that needs no password still runs, and one that does fails with one line and exit 2.
rm -rf node_modules/@node-rs/argon2-*
test "$(npx rekey --version)" = "$VERSION"
test "$(npx rekey gen | wc -c)" -ge 65
node check.mjs
rm -rf .rekey
export ADMIN_PASSWORD=correct-horse-battery-staple-42
set +e
npx rekey --store "$WORK/admin.db" admin create --email ops@example.com --password-env ADMIN_PASSWORD 2> admin.err
CODE=$?
set -e
test "$CODE" = 2 || { cat admin.err >&2; echo "admin create without argon2 exited $CODE" >&2; exit 1; }
tail -1 admin.err | grep -q '^rekey: ERR_CONFIG: password hashing needs @node-rs/argon2' || { cat admin.err >&2; exit 1; }
if grep -q '^ *at ' admin.err; then cat admin.err >&2; echo "a stack trace" >&2; exit 1; fi
echo "installed without optional dependencies: commands without passwords work"
