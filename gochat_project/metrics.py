"""Prometheus exposition for every process kind: `/metrics` on the gateway (a
Django view), and a small HTTP server on GOCHAT_METRICS_PORT in logic and the
Celery workers."""

import logging
import os

from django.http import HttpRequest, HttpResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest, start_http_server

log = logging.getLogger(__name__)


def metrics_view(request: HttpRequest) -> HttpResponse:
    return HttpResponse(generate_latest(), content_type=CONTENT_TYPE_LATEST)


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
