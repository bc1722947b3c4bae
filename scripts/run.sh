#!/usr/bin/env bash
# `make run`: bring up the dependencies, migrate, then run every GoChat process in the
# foreground under supervisord (scripts/supervisord.conf), which starts again any that
# exits. Ctrl-C stops them all, then the embedded Kafka broker.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
$PY manage.py services up
$PY manage.py migrate --noinput
$PY manage.py collectstatic --noinput -v 0
export GOCHAT_RUN_DIR="${GOCHAT_RUN_DIR:-$PWD/.run}"
export GOCHAT_PORT="${GOCHAT_PORT:-8000}"
export GOCHAT_TOPIC_PREFIX="${GOCHAT_TOPIC_PREFIX:-gochat}"
export GOCHAT_GATEWAY_METRICS_PORT="${GOCHAT_GATEWAY_METRICS_PORT:-9100}"
export GOCHAT_LOGIC_METRICS_PORT="${GOCHAT_LOGIC_METRICS_PORT:-9101}"
export GOCHAT_PERSIST_METRICS_PORT="${GOCHAT_PERSIST_METRICS_PORT:-9102}"
export GOCHAT_FANOUT_METRICS_PORT="${GOCHAT_FANOUT_METRICS_PORT:-9103}"
mkdir -p "$GOCHAT_RUN_DIR/logs"
trap '$PY manage.py services down' EXIT
.venv/bin/supervisord -c scripts/supervisord.conf
