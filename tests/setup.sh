#!/bin/sh
# Test set-up, run by `./dev test` before pytest: make sure the local services the
# integration tests use are up (starting them with the distribution's own commands when
# they are installed but stopped), and install the third-party protocol peers.
# Never fails the run by itself: tests that need a missing service skip (or fail in CI).
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)

port_open() {
    "$ROOT/.venv/bin/python" - "$1" <<'PY'
import socket, sys
s = socket.socket()
s.settimeout(0.5)
sys.exit(0 if s.connect_ex(("127.0.0.1", int(sys.argv[1]))) == 0 else 1)
PY
}

if ! port_open 5432 && command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
    echo "setup: starting PostgreSQL" >&2
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start || true
fi
if ! port_open 6379 && command -v redis-server >/dev/null 2>&1; then
    echo "setup: starting Redis" >&2
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no || true
fi

# Debian's Chromium for the console's browser tests (Playwright drives it; Playwright's own
# browser download cannot work here).
# A CJK font, or the screenshots of the console show boxes for its Chinese labels.
if { [ ! -x /usr/bin/chromium ] || [ ! -d /usr/share/fonts/truetype/wqy ]; } &&
        command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing Debian's chromium and a CJK font for the browser tests" >&2
    { apt-get install -y chromium fonts-wqy-microhei >/dev/null 2>&1 ||
      { apt-get update >/dev/null 2>&1 &&
        apt-get install -y chromium fonts-wqy-microhei >/dev/null 2>&1; }; } ||
        echo "setup: could not install chromium; the browser tests will skip (fail in CI)" >&2
fi

# Third-party protocol peers for the interop tests (see tests/peers/).
if [ -x "$ROOT/tests/peers/install.sh" ]; then
    sh "$ROOT/tests/peers/install.sh" || echo "setup: could not install the protocol peers; their tests will skip (fail in CI)" >&2
fi
exit 0
