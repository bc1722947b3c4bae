"""OpenAPI generation (drf-spectacular): every operation also documents the error
statuses docs/protocol.md promises, so a client knows every answer it can get."""

from typing import Any

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework_simplejwt.views import TokenViewBase

# {"detail": "..."} (DRF), with simplejwt's `code` on token errors. 400s may instead be
# field errors ({"field": ["..."]}, nested for list items): documented as any object.
ERROR = inline_serializer("Error", {"detail": serializers.CharField(), "code": serializers.CharField(required=False)})


class GoChatAutoSchema(AutoSchema):
    def _get_response_bodies(self, direction: Any = "response") -> dict[str, Any]:
        responses = super()._get_response_bodies(direction)
        for code in self._error_statuses():
            if code not in responses:
                body = OpenApiTypes.OBJECT if code == "400" else ERROR
                responses[code] = self._get_response_for_code(body, code, direction=direction)
        return responses

    def _error_statuses(self) -> list[str]:
        public = all(isinstance(p, AllowAny) for p in self.view.get_permissions())
        has_body = self.method in ("POST", "PUT", "PATCH")
        has_query = any(p["in"] == "query" for p in self._get_parameters())
        codes = []
        if has_body or has_query:
            codes.append("400")  # invalid input
        if not public or isinstance(self.view, TokenViewBase):
            codes.append("401")  # missing/invalid/expired token, inactive user; bad credentials
        if not public:
            codes.append("403")  # not a member, not the owner, ...
        if "{" in self.path or self._get_paginator() is not None:
            codes.append("404")  # unknown id, malformed conversation id, invalid cursor
        if has_body:
            codes.append("413")  # over GOCHAT_MAX_REQUEST_BYTES (gochat_project.middleware)
        codes.append("429")  # throttled, with Retry-After
        return codes
