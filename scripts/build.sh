#!/bin/sh
# `npm run build` (and `prepare`, which npx runs on a first `npx rekey` in a checkout): build
# beside dist/ and swap it in, so a rekey that is running meanwhile never loads a half-built
# or deleted dist/.
set -e
next="dist.next.$$"
prev="dist.prev.$$"
rm -rf "$next"
tsc -p tsconfig.build.json --outDir "$next"
if [ -d dist ]; then mv dist "$prev"; fi
mv "$next" dist
rm -rf "$prev"
