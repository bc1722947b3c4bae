"""Prometheus exposition for every process kind: a small HTTP server on
GOCHAT_METRICS_PORT (127.0.0.1 unless GOCHAT_METRICS_ADDR says otherwise), apart from
the clients' port: pipeline internals (lag, queue depths, error counts) are for the
operator's scraper, not for whoever can reach the chat."""

import logging
import os

from prometheus_client import start_http_server

log = logging.getLogger(__name__)


def start_metrics_server() -> int | None:
    """Serve /metrics on GOCHAT_METRICS_PORT (127.0.0.1) if set; returns the port."""
    port = int(os.environ.get("GOCHAT_METRICS_PORT") or 0)
    if not port:
        return None
    try:
        start_http_server(port, addr=os.environ.get("GOCHAT_METRICS_ADDR", "127.0.0.1"))
    except OSError as exc:
        log.error("metrics port %d unavailable: %s", port, exc)
        return None
    return port
