"""Request body limits (PROTOCOL: 413 too large), answered before a body is parsed.

Two layers share one rule, `body_limit`: the Django middleware answers on the
declared Content-Length (any server, the test client too); the ASGI wrapper also
counts the bytes of a body as they stream in, so a body sent without a length (or
with a false one) is cut off at the limit instead of being spooled whole."""

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse

UPLOADS_PATH = "/api/uploads"
# Room for the multipart envelope around the file (boundaries, part headers, a file name).
MULTIPART_OVERHEAD = 16 * 1024


def body_limit(path: str) -> int | None:
    """The largest request body accepted on `path`, or None for no limit (outside /api/)."""
    if path == UPLOADS_PATH:
        return settings.GOCHAT_MAX_UPLOAD_BYTES + MULTIPART_OVERHEAD
    if path.startswith("/api/"):
        return settings.GOCHAT_MAX_REQUEST_BYTES
    return None


def _too_large_detail(limit: int) -> dict[str, str]:
    return {"detail": f"Request body over {limit} bytes."}


class RequestSizeLimitMiddleware:
    """Answer 413 before reading a body whose Content-Length is over its path's limit."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return JsonResponse({"detail": "Invalid Content-Length."}, status=400)
        limit = body_limit(request.path)
        if limit is not None and length > limit:
            return JsonResponse(_too_large_detail(limit), status=413)
        return self.get_response(request)


Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class AsgiBodyLimit:
    """ASGI wrapper: 413 for a body over its path's limit, without reading the rest of it.

    Django's ASGI handler reads the whole body into a temporary file before any
    middleware runs; this stops that read at the limit (by telling Django the client
    went away, which makes it answer nothing) and answers 413 itself. (Daphne's
    Twisted layer receives a body before the application starts, into a temporary
    file; under uvicorn the body is not read past the limit at all.)"""

    def __init__(self, app: Callable[..., Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = body_limit(scope.get("path", "")) if scope["type"] == "http" else None
        if limit is None:
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length", b"0")
        if declared.isdigit() and int(declared) > limit:
            await _answer_413(send, limit)
            return
        received = 0
        over = False

        async def counted() -> dict[str, Any]:
            nonlocal received, over
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    over = True
                    return {"type": "http.disconnect"}
            return message

        await self.app(scope, counted, send)
        if over:
            await _answer_413(send, limit)


async def _answer_413(send: Send, limit: int) -> None:
    import orjson

    body = orjson.dumps(_too_large_detail(limit))
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})
