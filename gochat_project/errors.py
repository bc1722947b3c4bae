"""DRF exception handler: DRF conventions, plus clear answers for what DRF leaves
to Django (oversized or undecodable bodies) so bad input never becomes a 500."""

from typing import Any

from django.core.exceptions import RequestDataTooBig
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, RequestDataTooBig):
        return Response({"detail": "Request body too large."}, status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
    if isinstance(exc, UnicodeDecodeError):
        return Response({"detail": "Request body is not valid UTF-8."}, status=status.HTTP_400_BAD_REQUEST)
    return drf_exception_handler(exc, context)
