"""One middleware for what every HTTP request leaves behind: a request id, an access
log line, and the request metrics.

- The request id comes from a trusted proxy's `X-Request-ID` when GOCHAT_TRUSTED_PROXIES
  says there is one (so nginx's id follows the request), otherwise it is made here. It
  is returned in `X-Request-ID` and set on every log record written while the request
  is served (`request_id` in JSON lines).
- The access line (logger `gochat.access`) has method, path without the query string
  (it may carry a token), status, duration and the client address
  (gochat_project/client_address.py decided it).
- `gochat_http_requests_total{method,route,status}` and
  `gochat_http_request_seconds{method,route}`: `route` is the URL pattern that matched
  (`api/groups/<int:group_id>`), so the label set stays bounded whatever clients ask for.
"""

import contextvars
import logging
import re
import time
import uuid
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from prometheus_client import Counter, Histogram

log = logging.getLogger("gochat.access")

REQUESTS = Counter("gochat_http_requests_total", "HTTP requests answered", ["method", "route", "status"])
LATENCY = Histogram("gochat_http_request_seconds", "HTTP request duration", ["method", "route"],
                    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
REQUEST_ID = re.compile(r"\A[A-Za-z0-9._-]{1,64}\Z")

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)


class RequestIdFilter(logging.Filter):
    """Puts the current request's id on every record (None outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        return True


def incoming_request_id(header: str | None) -> str:
    """A trusted proxy's id if it is well-formed, else a new one."""
    if header and settings.GOCHAT_TRUSTED_PROXIES > 0 and REQUEST_ID.match(header):
        return header
    return uuid.uuid4().hex


class AccessLogMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        rid = incoming_request_id(request.headers.get("X-Request-ID"))
        token = request_id.set(rid)
        started = time.perf_counter()
        try:
            response = self.get_response(request)
            elapsed = time.perf_counter() - started
            response["X-Request-ID"] = rid
            match = getattr(request, "resolver_match", None)
            route = match.route if match is not None and match.route else (
                "static" if request.path.startswith("/" + settings.STATIC_URL) else "unmatched")
            method = request.method if request.method in METHODS else "other"
            REQUESTS.labels(method, route, str(response.status_code)).inc()
            LATENCY.labels(method, route).observe(elapsed)
            log.info("%s %s %d %.1fms %s", request.method, request.path, response.status_code, elapsed * 1000,
                     request.META.get("REMOTE_ADDR"), extra={
                         "method": request.method, "path": request.path, "status": response.status_code,
                         "duration_ms": round(elapsed * 1000, 1), "client": request.META.get("REMOTE_ADDR")})
            return response
        finally:
            request_id.reset(token)
