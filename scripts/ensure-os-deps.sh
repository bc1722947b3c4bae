#!/usr/bin/env bash
# OS packages the Python dependencies build against (mysqlclient needs MariaDB's headers).
set -euo pipefail
if ! pkg-config --exists libmariadb 2>/dev/null && ! pkg-config --exists mysqlclient 2>/dev/null; then
  echo "installing pkg-config and libmariadb-dev (mysqlclient builds against them)"
  apt-get install -y pkg-config libmariadb-dev >/dev/null || { apt-get update >/dev/null && apt-get install -y pkg-config libmariadb-dev >/dev/null; }
fi
# With --test (make test-deps): the web client's browser tests (tests/web) drive Debian's
# Chromium through Playwright. `make run` does not need it.
if [ "${1:-}" = "--test" ] && [ ! -x /usr/bin/chromium ]; then
  echo "installing chromium (the web client's browser tests drive it)"
  apt-get install -y chromium >/dev/null || { apt-get update >/dev/null && apt-get install -y chromium >/dev/null; }
fi
# With --node (make lint-js): Node.js and npm, which install and run ESLint for web/*.js.
if [ "${1:-}" = "--node" ] && ! command -v npm >/dev/null; then
  echo "installing nodejs and npm (ESLint checks the web client's modules)"
  apt-get install -y nodejs npm >/dev/null || { apt-get update >/dev/null && apt-get install -y nodejs npm >/dev/null; }
fi
