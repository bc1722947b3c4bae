from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse


class RequestSizeLimitMiddleware:
    """Answer 413 before reading a body over GOCHAT_MAX_REQUEST_BYTES (PROTOCOL: 413)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return JsonResponse({"detail": "Invalid Content-Length."}, status=400)
        if length > settings.GOCHAT_MAX_REQUEST_BYTES and request.path.startswith("/api/"):
            return JsonResponse(
                {"detail": f"Request body over {settings.GOCHAT_MAX_REQUEST_BYTES} bytes."},
                status=413,
            )
        return self.get_response(request)
