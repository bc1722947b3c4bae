"""DRF exception handler: DRF conventions, plus clear answers for what DRF leaves
to Django (oversized or undecodable bodies) so bad input never becomes a 500."""

from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    from messaging.protocol import AppError

    if isinstance(exc, AppError):  # the protocol's error codes, with their HTTP statuses (messaging/protocol.py)
        return Response({"detail": exc.detail, "code": exc.code}, status=exc.http_status)
    if isinstance(exc, RequestDataTooBig):
        return Response({"detail": "Request body too large."}, status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
    if isinstance(exc, UnicodeDecodeError):
        return Response({"detail": "Request body is not valid UTF-8."}, status=status.HTTP_400_BAD_REQUEST)
    return drf_exception_handler(exc, context)


@csrf_exempt  # a JSON 404 for any method; Django's CSRF check would answer unsafe methods with an HTML 403
def api_not_found(request: HttpRequest, *args: object, **kwargs: object) -> JsonResponse:
    """Any /api/ path no view matches (e.g. /api/groups/abc): a JSON 404 like DRF's,
    not Django's HTML page."""
    return JsonResponse({"detail": "Not found."}, status=404)
