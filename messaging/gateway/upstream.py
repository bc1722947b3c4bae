"""The gateway's hop into Kafka: sends and read receipts go to
`gochat.messages.upstream`, keyed by conversation id so one logic consumer sees a
conversation in order. One producer per process, polled by a daemon thread."""

import threading
from functools import cache
from typing import Any

from django.conf import settings

from gochat_project.infra import kafka
from messaging.protocol import (
    EditEvent,
    HideEvent,
    ReadEvent,
    RecallEvent,
    SendEvent,
    TypingEvent,
    UpstreamEvent,
    encode_upstream,
)


@cache
def _producer() -> kafka.ProducerHandle:
    # Only failed deliveries call back into Python: a callback per send cost the gateway
    # a GIL hand-off per message (docs/benchmarks.md). A failed send is logged: the client
    # gets no ack and resends with the same client_msg_id.
    handle = kafka.producer_build("upstream", keep_failures=False, **{
        "linger.ms": settings.GOCHAT_UPSTREAM_LINGER_MS, "delivery.report.only.error": True})
    producer = handle.client

    def poll_forever() -> None:
        while True:
            producer.poll(0.1)

    threading.Thread(target=poll_forever, name="upstream-poll", daemon=True).start()
    return handle


def _produce(conversation_id: str, event: UpstreamEvent) -> None:
    producer = _producer().client
    value = encode_upstream(event)
    try:
        producer.produce(kafka.upstream_topic(), value, key=conversation_id.encode())
    except BufferError:
        producer.flush(1.0)  # local queue full: wait for room once, then let it raise
        producer.produce(kafka.upstream_topic(), value, key=conversation_id.encode())


def upstream_send(*, sender_id: int, fields: dict[str, Any], gateway_id: str | None = None,
                  conn_id: str | None = None) -> None:
    """Hand a validated send to logic (fields: client_msg_id, conversation_id, body, kind, extra,
    and optionally reply_to, mentions)."""
    _produce(fields["conversation_id"], SendEvent(sender_id, fields["conversation_id"], fields["client_msg_id"],
                                                  fields["body"], fields["kind"], fields["extra"], gateway_id, conn_id,
                                                  fields.get("reply_to"), fields.get("mentions") or []))


def upstream_read(*, user_id: int, conversation_id: str, seq: int, conn_id: str | None = None) -> None:
    """Ask logic to route a read receipt (the read state is already stored)."""
    _produce(conversation_id, ReadEvent(user_id, conversation_id, seq, conn_id))


def upstream_recall(*, conversation_id: str, message_id: int, seq: int) -> None:
    """Ask logic to push a `recall` frame to the conversation's online members."""
    _produce(conversation_id, RecallEvent(conversation_id, message_id, seq))
    _producer().client.flush(5)  # called from request handlers and admin actions: make it durable before answering


def upstream_edit(*, conversation_id: str, message_id: int, seq: int, body: str, edited_at: int) -> None:
    """Ask logic to push an `edit` frame to every member device (the edit is already stored)."""
    _produce(conversation_id, EditEvent(conversation_id, message_id, seq, body, edited_at))
    _producer().client.flush(5)  # called from request handlers: make it durable before answering


def upstream_typing(*, user_id: int, conversation_id: str) -> None:
    _produce(conversation_id, TypingEvent(user_id, conversation_id))


def upstream_hide(*, user_id: int, conversation_id: str, message_id: int) -> None:
    """Tell the user's other devices that a message was deleted for them."""
    _produce(conversation_id, HideEvent(user_id, conversation_id, message_id))
