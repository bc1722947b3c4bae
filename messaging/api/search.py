"""`GET /api/search`: the caller's readable messages matching a query (docs/protocol.md, "Search")."""

from typing import Any

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.exceptions import NotFound, PermissionDenied
from rest_framework.pagination import Cursor
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from gochat_project.api.caller import caller_id
from gochat_project.api.pagination import ResultsNextPagination
from gochat_project.api.schema import ERROR
from messaging import conversations, search, selectors, services
from messaging.api.views import MessageSerializer
from messaging.conversations import ConversationRef
from messaging.protocol import AppError

MAX_LIMIT = 50  # PROTOCOL.md, v1.1 "Search"


class SearchQuery(serializers.Serializer):
    q = serializers.CharField(min_length=1, max_length=search.QUERY_MAX_CHARS,
                              help_text="words (case-insensitive) or any run of 2+ Chinese/Japanese characters")
    conversation_id = serializers.RegexField(conversations.PATTERN, max_length=conversations.MAX_LENGTH, required=False,
                                             help_text="search this conversation only")
    limit = serializers.IntegerField(min_value=1, max_value=MAX_LIMIT, default=20, required=False)
    cursor = serializers.CharField(required=False, help_text="from `next`")


class SearchPagination(ResultsNextPagination):
    """The cursor format of the other lists (a base64 `p=` position, here the last
    message id), over a page the search selector already cut."""

    ordering = "-message_id"

    def before_message_id(self, request: Request) -> int | None:
        cursor = self.decode_cursor(request)  # NotFound when malformed
        if cursor is None:
            return None
        if cursor.reverse or cursor.offset or cursor.position is None or not str(cursor.position).isdigit():
            raise NotFound(self.invalid_cursor_message)
        return int(cursor.position)

    def page_response(self, request: Request, results: list[dict[str, Any]], has_more: bool) -> Response:
        self.base_url = request.build_absolute_uri()
        following = None
        if has_more and results:
            following = self.encode_cursor(Cursor(offset=0, reverse=False, position=results[-1]["message_id"]))
        return Response({"results": results, "next": following})


def _conversation(request: Request, conversation_id: str | None) -> ConversationRef | None:
    if conversation_id is None:
        return None
    try:
        return services.conversation_check_access(user_id=caller_id(request), conversation_id=conversation_id)
    except AppError as exc:  # s_9_3 (the larger id first) too: no conversation of the caller's
        raise PermissionDenied("You are not in this conversation.") from exc


class SearchView(APIView):
    @extend_schema(parameters=[SearchQuery], responses={
        200: inline_serializer("SearchPage", {"results": MessageSerializer(many=True),
                                              "next": serializers.URLField(allow_null=True)}),
        404: ERROR})
    def get(self, request: Request) -> Response:
        # A plain dict: from a QueryDict DRF reads `conversation_id=` as absent, not as invalid.
        # The cursor is the paginator's to judge: anything it cannot decode (a NUL
        # character included, which a CharField would call a 400) is the protocol's 404.
        params = request.query_params.dict()
        params.pop("cursor", None)
        query = SearchQuery(data=params)
        query.is_valid(raise_exception=True)
        data = query.validated_data
        ref = _conversation(request, data.get("conversation_id"))
        paginator = SearchPagination()
        rows, has_more = search.messages_search(
            user_id=caller_id(request), query=data["q"], ref=ref,
            before_message_id=paginator.before_message_id(request), limit=data["limit"])
        results = selectors.reactions_attach([selectors.message_to_dict(m) for m in rows], user_id=caller_id(request))
        return paginator.page_response(request, results, has_more)
