#!/bin/sh
# CTest fixture (openai_client_install): installs the openai Node client into DEST once.
# Usage: setup.sh SRC_DIR DEST_DIR. Fails loudly (non-zero) when npm or the registry is missing.
set -eu
src=$1
dest=$2
mkdir -p "$dest"
if ! command -v npm >/dev/null 2>&1; then
  echo "openai client test: npm not found (install Node.js 20 with npm; see DESIGN.md)" >&2
  exit 1
fi
if [ -f "$dest/node_modules/openai/package.json" ] && cmp -s "$src/package.json" "$dest/package.json"; then
  echo "openai client already installed in $dest"
  exit 0
fi
cp "$src/package.json" "$dest/package.json"
cd "$dest"
npm install --no-audit --no-fund --loglevel=error
test -f node_modules/openai/package.json
echo "installed openai $(node -p 'require("./node_modules/openai/package.json").version') in $dest"
