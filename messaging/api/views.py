

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from gochat_project.api.caller import caller_id
from gochat_project.api.fields import StrictIntegerField
from messaging import conversations, protocol, rules, selectors, services
from messaging.conversations import ConversationRef
from messaging.gateway import upstream
from messaging.protocol import SendEvent


class MessageSerializer(serializers.Serializer):
    """The message object (docs/protocol.md); documentation only: selectors build the dicts."""

    message_id = serializers.RegexField(r"^[0-9]{1,20}$")
    conversation_id = serializers.CharField()
    seq = serializers.IntegerField()
    sender_id = serializers.IntegerField()
    kind = serializers.ChoiceField(choices=sorted(protocol.KINDS))
    body = serializers.CharField(allow_blank=True)
    extra = serializers.DictField()
    client_msg_id = serializers.CharField()
    ts = serializers.IntegerField()
    recalled = serializers.BooleanField()
    edited_at = serializers.IntegerField(allow_null=True)
    reply_to = inline_serializer("ReplyTo", {"message_id": serializers.RegexField(r"^[0-9]{1,20}$"),
                                             "seq": serializers.IntegerField(),
                                             "sender_id": serializers.IntegerField()}, allow_null=True)
    mentions = serializers.ListField(child=serializers.IntegerField())


def _access(request: Request, conversation_id: str) -> ConversationRef:
    """The conversation, or AppError (not_found: 404, not_member: 403)."""
    return services.conversation_check_access(user_id=caller_id(request), conversation_id=conversation_id)


class SeqQuery(serializers.Serializer):
    after_seq = serializers.IntegerField(required=False, min_value=0, max_value=protocol.MAX_SEQ, default=0)
    before_seq = serializers.IntegerField(required=False, min_value=1, max_value=protocol.MAX_SEQ)
    limit = serializers.IntegerField(required=False, min_value=1, max_value=protocol.MAX_SYNC_LIMIT, default=50)


class ConversationListView(APIView):
    @extend_schema(responses=inline_serializer("Conversation", {
        "conversation_id": serializers.CharField(), "kind": serializers.ChoiceField(choices=["single", "group"]),
        "peer_id": serializers.IntegerField(required=False), "group_id": serializers.IntegerField(required=False),
        "max_seq": serializers.IntegerField(), "read_seq": serializers.IntegerField(),
        "unread": serializers.IntegerField(), "unread_mentions": serializers.IntegerField(),
        "muted": serializers.BooleanField(),
        "pinned": serializers.BooleanField(),
        "last_message": MessageSerializer(allow_null=True)}, many=True))
    def get(self, request: Request) -> Response:
        return Response(selectors.conversation_list(user_id=caller_id(request)))


class ConversationMessagesView(APIView):
    @extend_schema(parameters=[SeqQuery], responses=inline_serializer("MessagePage", {
        "messages": MessageSerializer(many=True), "has_more": serializers.BooleanField()}))
    def get(self, request: Request, conversation_id: str) -> Response:
        ref = _access(request, conversation_id)
        query = SeqQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        messages, has_more = selectors.conversation_messages(user_id=caller_id(request), ref=ref,
                                                             **query.validated_data)
        return Response({"messages": messages, "has_more": has_more})


class ReadInput(serializers.Serializer):
    seq = StrictIntegerField(min_value=0, max_value=protocol.MAX_SEQ)


class ConversationReadView(APIView):
    @extend_schema(request=ReadInput, responses={204: None})
    def post(self, request: Request, conversation_id: str) -> Response:
        ref = _access(request, conversation_id)
        data = ReadInput(data=request.data)
        data.is_valid(raise_exception=True)
        max_seq = selectors.conversation_max_seq(conversation_id=ref.conversation_id)
        read_seq = services.conversation_read(user_id=caller_id(request), conversation_id=ref.conversation_id,
                                              seq=data.validated_data["seq"], max_seq=max_seq)
        upstream.upstream_read(user_id=caller_id(request), conversation_id=ref.conversation_id, seq=read_seq)
        return Response(status=status.HTTP_204_NO_CONTENT)


class SendInput(serializers.Serializer):
    """The schema of a send; protocol.validate_message_fields validates it (as for a WebSocket
    `send`), with what a schema cannot say: a 1:1 id names the smaller user id first, a
    text message needs a non-blank body, `extra` is at most 4 KiB of JSON."""

    conversation_id = serializers.RegexField(conversations.PATTERN, max_length=conversations.MAX_LENGTH)
    client_msg_id = serializers.RegexField(r"^[A-Za-z0-9_-]{1,64}$", max_length=64)
    body = serializers.CharField(allow_blank=True, trim_whitespace=False, required=False,
                                 max_length=protocol.MAX_BODY_CHARS)
    kind = serializers.ChoiceField(choices=sorted(protocol.KINDS), required=False)
    extra = serializers.DictField(required=False, allow_null=True)
    reply_to = serializers.RegexField(r"^[0-9]{1,20}$", required=False, allow_null=True)
    mentions = serializers.ListField(child=serializers.IntegerField(min_value=1, max_value=protocol.MAX_USER_ID),
                                     required=False, allow_null=True, max_length=protocol.MAX_MENTIONS)


class MessageSendView(APIView):
    """For bots: the same pipeline as a WebSocket send. 202: handed to logic;
    rejections (not a member, ...) are checked here first so the caller gets a status."""

    @extend_schema(request=SendInput, responses={202: inline_serializer("Accepted", {
        "client_msg_id": serializers.CharField()})})
    def post(self, request: Request) -> Response:
        if not isinstance(request.data, dict):
            raise ValidationError({"detail": "Expected a JSON object."})
        fields = protocol.validate_message_fields(dict(request.data))  # AppError: 400, 413
        _access(request, fields["conversation_id"])
        # Logic decides; the same rules here turn a send it would refuse into a status, not a 202.
        refusal = rules.send_refusal(SendEvent(caller_id(request), fields["conversation_id"], fields["client_msg_id"],
                                               fields["body"], fields["kind"], fields["extra"],
                                               reply_to=fields["reply_to"], mentions=fields["mentions"]))
        if refusal is not None:
            raise refusal
        upstream.upstream_send(sender_id=caller_id(request), fields=fields)
        return Response({"client_msg_id": fields["client_msg_id"]}, status=status.HTTP_202_ACCEPTED)




class MessageRecallView(APIView):
    """The sender recalls their own message within GOCHAT_RECALL_WINDOW_S."""

    @extend_schema(request=None, responses={204: None})
    def post(self, request: Request, message_id: int) -> Response:
        services.message_recall_by_sender(user_id=caller_id(request), message_id=message_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


class EditInput(serializers.Serializer):
    """The schema of an edit; protocol.validate_edit_body validates it (as for a WebSocket `edit`)."""

    body = serializers.CharField(trim_whitespace=False, max_length=protocol.MAX_BODY_CHARS)


class MessageEditView(APIView):
    """The sender replaces the body of their own text message within GOCHAT_EDIT_WINDOW_S."""

    @extend_schema(request=EditInput, responses={204: None})
    def post(self, request: Request, message_id: int) -> Response:
        body = request.data.get("body") if isinstance(request.data, dict) else None
        services.message_edit_by_sender(user_id=caller_id(request), message_id=message_id, body=body)
        return Response(status=status.HTTP_204_NO_CONTENT)


class MessageHideView(APIView):
    """Delete for me: the message disappears from the caller's history on all their devices."""

    @extend_schema(responses={204: None})
    def delete(self, request: Request, message_id: int) -> Response:
        services.message_hide(user_id=caller_id(request), message_id=message_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ConversationPrefsInput(serializers.Serializer):
    muted = serializers.BooleanField(required=False)
    pinned = serializers.BooleanField(required=False)


class ConversationPrefsView(APIView):
    @extend_schema(request=ConversationPrefsInput, responses={204: None})
    def patch(self, request: Request, conversation_id: str) -> Response:
        ref = _access(request, conversation_id)
        data = ConversationPrefsInput(data=request.data)
        data.is_valid(raise_exception=True)
        services.conversation_prefs_update(user_id=caller_id(request), conversation_id=ref.conversation_id,
                                           **data.validated_data)
        return Response(status=status.HTTP_204_NO_CONTENT)
