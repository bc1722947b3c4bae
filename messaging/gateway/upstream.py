"""The gateway's hop into Kafka: sends and read receipts go to
`gochat.messages.upstream`, keyed by conversation id so one logic consumer sees a
conversation in order. One producer per process, polled by a daemon thread."""

import logging
import threading
from functools import cache
from typing import Any

import orjson
from confluent_kafka import Producer
from django.conf import settings

from gochat_project import kafka

log = logging.getLogger(__name__)


def _on_delivery(err: Any, msg: Any) -> None:
    if err is not None:
        # The client gets no ack and resends with the same client_msg_id.
        log.error("upstream produce failed: %s", err)


@cache
def _producer() -> Producer:
    # Only failed deliveries call back into Python: a callback per send cost the gateway
    # a GIL hand-off per message (docs/benchmarks.md).
    producer = Producer(kafka.producer_config(on_delivery=_on_delivery, **{
        "linger.ms": settings.GOCHAT_UPSTREAM_LINGER_MS, "delivery.report.only.error": True}))

    def poll_forever() -> None:
        while True:
            producer.poll(0.1)

    threading.Thread(target=poll_forever, name="upstream-poll", daemon=True).start()
    return producer


def _produce(conversation_id: str, event: dict[str, Any]) -> None:
    producer = _producer()
    value = orjson.dumps(event)
    try:
        producer.produce(kafka.upstream_topic(), value, key=conversation_id.encode())
    except BufferError:
        producer.flush(1.0)  # local queue full: wait for room once, then let it raise
        producer.produce(kafka.upstream_topic(), value, key=conversation_id.encode())


def upstream_send(*, sender_id: int, fields: dict[str, Any], gateway_id: str | None = None,
                  conn_id: str | None = None) -> None:
    """Hand a validated send to logic (fields: client_msg_id, conversation_id, body, kind, extra)."""
    event = {"t": "send", "uid": sender_id, "gw": gateway_id, "conn": conn_id, "cid": fields["conversation_id"],
             **{k: fields[k] for k in ("client_msg_id", "body", "kind", "extra")}}
    _produce(fields["conversation_id"], event)


def upstream_read(*, user_id: int, conversation_id: str, seq: int, conn_id: str | None = None) -> None:
    """Ask logic to route a read receipt (the read state is already stored)."""
    _produce(conversation_id, {"t": "read", "uid": user_id, "cid": conversation_id, "seq": seq, "conn": conn_id})


def upstream_recall(*, conversation_id: str, message_id: int, seq: int) -> None:
    """Ask logic to push a `recall` frame to the conversation's online members."""
    _produce(conversation_id, {"t": "recall", "cid": conversation_id, "mid": str(message_id), "seq": seq})
    _producer().flush(5)  # called from request handlers and admin actions: make it durable before answering


def upstream_typing(*, user_id: int, conversation_id: str) -> None:
    _produce(conversation_id, {"t": "typing", "uid": user_id, "cid": conversation_id})


def upstream_hide(*, user_id: int, conversation_id: str, message_id: int) -> None:
    """Tell the user's other devices that a message was deleted for them."""
    _produce(conversation_id, {"t": "hide", "uid": user_id, "cid": conversation_id, "mid": str(message_id)})
