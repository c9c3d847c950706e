#!/bin/sh
# Install the third-party protocol peers the interop tests talk to (idempotent).
# npm `smpp` (pinned in package.json / package-lock.json) for tests/peers/smpp_server.js.
# Called by tests/setup.sh; without node/npm it says so and exits 0 (the peer tests skip,
# or fail in CI).
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "peers: node/npm not found; SMPP interop tests against npm smpp will skip" >&2
    exit 0
fi
if [ -f "$HERE/node_modules/smpp/package.json" ] && \
   [ "$(node -p "require('$HERE/node_modules/smpp/package.json').version")" = "0.5.1" ]; then
    exit 0
fi
cd "$HERE" && npm ci --no-audit --no-fund --loglevel=error
