"""The web chat client: `web/index.html` at `/` and the files under `web/` at `/web/<path>`.

Plain static files, read from disk on each request (they are small and there is no build
step). Only files inside `web/` are served: hidden names, `..`, and anything resolving
outside the directory are 404. Responses carry an ETag so browsers revalidate cheaply,
and the page gets a Content-Security-Policy that allows no inline script and connects
only to this host (REST and its WebSocket).
"""

import hashlib
import mimetypes
from pathlib import Path

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotModified
from django.views.decorators.http import require_safe

WEB_DIR = Path(settings.BASE_DIR) / "web"

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".webmanifest": "application/manifest+json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".txt": "text/plain; charset=utf-8",
    ".woff2": "font/woff2",
}


def _resolve(relative: str) -> Path:
    """The file under WEB_DIR that `relative` names, or Http404."""
    parts = relative.split("/")
    if not relative or "\\" in relative or "\x00" in relative or any(p in ("", ".", "..") or p.startswith(".")
                                                                      for p in parts):
        raise Http404("No such file.")
    root = WEB_DIR.resolve()
    candidate = (root / relative).resolve()
    if not candidate.is_relative_to(root) or not candidate.is_file():
        raise Http404("No such file.")
    return candidate


def _file_response(request: HttpRequest, path: Path) -> HttpResponse:
    data = path.read_bytes()
    etag = '"' + hashlib.sha256(data).hexdigest()[:32] + '"'
    if etag in [t.strip() for t in request.headers.get("If-None-Match", "").split(",")]:
        response: HttpResponse = HttpResponseNotModified()
    else:
        content_type = CONTENT_TYPES.get(path.suffix.lower()) or mimetypes.guess_type(path.name)[0]
        response = HttpResponse(data, content_type=content_type or "application/octet-stream")
    response["ETag"] = etag
    response["Cache-Control"] = "no-cache"
    response["X-Content-Type-Options"] = "nosniff"
    return response


def _content_security_policy(request: HttpRequest) -> str:
    host = request.get_host()
    return "; ".join([
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data: blob:",  # attachments: fetched with the token, shown from blob: URLs
        f"connect-src 'self' ws://{host} wss://{host}",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ])


@require_safe
def web_index(request: HttpRequest) -> HttpResponse:
    response = _file_response(request, _resolve("index.html"))
    response["Content-Security-Policy"] = _content_security_policy(request)
    response["Referrer-Policy"] = "no-referrer"
    return response


@require_safe
def web_asset(request: HttpRequest, path: str) -> HttpResponse:
    return _file_response(request, _resolve(path))
