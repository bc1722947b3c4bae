"""The protocol's page shape, `{results, next}`, for every cursor-paginated list."""

from typing import Any

from rest_framework.pagination import CursorPagination
from rest_framework.response import Response


class ResultsNextPagination(CursorPagination):
    def get_paginated_response(self, data: Any) -> Response:
        return Response({"results": data, "next": self.get_next_link()})

    def get_paginated_response_schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        return {
            "type": "object",
            "required": ["results", "next"],
            "properties": {
                "results": schema,
                "next": {"type": "string", "nullable": True, "format": "uri"},
            },
        }
