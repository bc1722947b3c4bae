#!/usr/bin/env bash
# `make run`: bring up the dependencies, migrate, then run every GoChat process in
# the foreground under honcho. Ctrl-C stops them all and the embedded Kafka broker.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
$PY manage.py services up
$PY manage.py migrate --noinput
trap '$PY manage.py services down' EXIT
.venv/bin/honcho start -f Procfile
