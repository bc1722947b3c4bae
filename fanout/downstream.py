"""Per-gateway delivery: `gochat.messages.downstream.{gateway_id}`.

Producer side (logic, fan-out tasks): `Deliveries` collects, for one batch, the
frames each gateway must push and to whom, and produces one Kafka record per
gateway. A frame is encoded once and carried as text; gateways never re-encode it.

Record value: a JSON list of deliveries (messaging/protocol.py, encode_delivery).
Downstream topics have one partition by default, so the records of one gateway keep
logic's order.
"""

from collections import defaultdict
from typing import Any

import orjson
from confluent_kafka import Producer

from gochat_project import kafka
from messaging.protocol import encode_delivery


class Deliveries:
    def __init__(self) -> None:
        self._by_gateway: dict[str, list[dict[str, Any]]] = defaultdict(list)

    def __bool__(self) -> bool:
        return bool(self._by_gateway)

    def to_users(self, gateway_id: str, frame: str, user_ids: list[int], exclude_conn: str | None = None) -> None:
        self._by_gateway[gateway_id].append(encode_delivery(frame, user_ids=user_ids, skip_conn=exclude_conn))

    def to_connection(self, gateway_id: str, frame: str, conn_id: str) -> None:
        self._by_gateway[gateway_id].append(encode_delivery(frame, conn_ids=[conn_id]))

    def produce(self, producer: Producer) -> int:
        """Produce one record per gateway; returns how many. Caller flushes."""
        for gateway_id, items in self._by_gateway.items():
            producer.produce(kafka.downstream_topic(gateway_id), orjson.dumps(items))
        return len(self._by_gateway)

