"""Per-gateway delivery: `gochat.messages.downstream.{gateway_id}`.

Producer side (logic, fan-out tasks): `Deliveries` collects, for one batch, the
frames each gateway must push and to whom, and produces one Kafka record per
gateway. A frame is encoded once and carried as text; gateways never re-encode it.

Record value: a JSON list of deliveries and control items (messaging/protocol.py:
encode_delivery, encode_close).
Downstream topics have one partition by default, so the records of one gateway keep
logic's order.
"""

from collections import defaultdict
from functools import cache
from typing import Any

import orjson
from confluent_kafka import Producer

from gochat_project.infra import kafka
from messaging.protocol import encode_close, encode_delivery, encode_presence


class Deliveries:
    def __init__(self) -> None:
        self._by_gateway: dict[str, list[dict[str, Any]]] = defaultdict(list)

    def __bool__(self) -> bool:
        return bool(self._by_gateway)

    def to_users(self, gateway_id: str, frame: str, user_ids: list[int], exclude_conn: str | None = None) -> None:
        self._by_gateway[gateway_id].append(encode_delivery(frame, user_ids=user_ids, skip_conn=exclude_conn))

    def to_connection(self, gateway_id: str, frame: str, conn_id: str) -> None:
        self._by_gateway[gateway_id].append(encode_delivery(frame, conn_ids=[conn_id]))

    def to_watchers(self, gateway_id: str, frame: str, user_id: int, at_ms: int) -> None:
        """A `presence` frame of user_id, for that gateway's sockets subscribed to the user."""
        self._by_gateway[gateway_id].append(encode_presence(frame, user_id=user_id, at_ms=at_ms))

    def kick_users(self, gateway_id: str, code: int, user_ids: list[int]) -> None:
        """Close every socket of these users on that gateway with `code`."""
        self._by_gateway[gateway_id].append(encode_close(code, user_ids=user_ids))

    def kick_connections(self, gateway_id: str, code: int, conn_ids: list[str]) -> None:
        """Close these sockets on that gateway with `code`."""
        self._by_gateway[gateway_id].append(encode_close(code, conn_ids=conn_ids))

    def produce(self, producer: Producer) -> int:
        """Produce one record per gateway; returns how many. Caller flushes."""
        for gateway_id, items in self._by_gateway.items():
            producer.produce(kafka.downstream_topic(gateway_id), orjson.dumps(items))
        return len(self._by_gateway)


@cache
def _control_producer() -> kafka.ProducerHandle:
    return kafka.producer_build("control")


def control_produce(deliveries: Deliveries, timeout: float = 10.0) -> None:
    """Produce control records (bans, sockets over the cap, presence changes) from a
    gateway or a command, and wait until Kafka holds them."""
    if deliveries:
        producer = _control_producer()
        deliveries.produce(producer.client)
        producer.flush_or_raise(timeout)
