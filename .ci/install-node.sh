#!/usr/bin/env bash
# Installs the pinned npm packages of package-lock.json (solc-js, anvil) into the
# project's node_modules with `npm ci`, then writes the stamp named by $1. Safe to run
# twice at once, like install-venv.sh: the second waits on the lock, then finds the stamp.
# The lock lives beside node_modules, since `npm ci` deletes node_modules first.
set -euo pipefail
STAMP=$1

command -v node >/dev/null || { echo "tkms needs Node.js 20+ and npm (see README)" >&2; exit 1; }
command -v npm >/dev/null || { echo "tkms needs npm (see README)" >&2; exit 1; }
node -e 'if (+process.versions.node.split(".")[0] < 20) { console.error("tkms needs Node.js 20+"); process.exit(1) }'
exec 9>.node-install.lock
flock 9
[ -f "$STAMP" ] && exit 0
# No install scripts: solc-js ships its compiler (soljson.js) and the anvil package its binary.
npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
node_modules/.bin/anvil --version >/dev/null
rm -f node_modules/.installed-*
touch "$STAMP"
