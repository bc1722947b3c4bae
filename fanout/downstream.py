"""Per-gateway delivery: `gochat.messages.downstream.{gateway_id}`.

Producer side (logic, fan-out tasks): `Deliveries` collects, for one batch, the
frames each gateway must push and to whom, and produces one Kafka record per
gateway. A frame is encoded once and carried as text; gateways never re-encode it.

Record value: a JSON list of {"f": frame text, "u": [user ids], "c": [connection
ids], "x": connection id to skip}, or of control items {"k": close code, "u"/"c":
whose sockets to close} (a ban closes a user's sockets with 4403 on every gateway; a
user over the connection cap loses their oldest sockets with 4409). Downstream topics
have one partition by default, so the records of one gateway keep logic's order.
"""

from collections import defaultdict
from functools import cache
from typing import Any

import orjson
from confluent_kafka import KafkaException, Producer

from gochat_project.infra import kafka


class Deliveries:
    def __init__(self) -> None:
        self._by_gateway: dict[str, list[dict[str, Any]]] = defaultdict(list)

    def __bool__(self) -> bool:
        return bool(self._by_gateway)

    def to_users(self, gateway_id: str, frame: str, user_ids: list[int], exclude_conn: str | None = None) -> None:
        item: dict[str, Any] = {"f": frame, "u": user_ids}
        if exclude_conn:
            item["x"] = exclude_conn
        self._by_gateway[gateway_id].append(item)

    def to_connection(self, gateway_id: str, frame: str, conn_id: str) -> None:
        self._by_gateway[gateway_id].append({"f": frame, "c": [conn_id]})

    def kick_users(self, gateway_id: str, code: int, user_ids: list[int]) -> None:
        """Close every socket of these users on that gateway with `code`."""
        self._by_gateway[gateway_id].append({"k": code, "u": user_ids})

    def kick_connections(self, gateway_id: str, code: int, conn_ids: list[str]) -> None:
        self._by_gateway[gateway_id].append({"k": code, "c": conn_ids})

    def produce(self, producer: Producer) -> int:
        """Produce one record per gateway; returns how many. Caller flushes."""
        for gateway_id, items in self._by_gateway.items():
            producer.produce(kafka.downstream_topic(gateway_id), orjson.dumps(items))
        return len(self._by_gateway)


def flush_or_raise(producer: Producer, errors: list[Exception], timeout: float = 30.0) -> None:
    """Wait until every produced record is acknowledged; raise if any failed."""
    remaining = producer.flush(timeout)
    if remaining:
        raise KafkaException(f"{remaining} records not acknowledged after {timeout}s")
    if errors:
        first = errors[0]
        errors.clear()
        raise KafkaException(f"produce failed: {first}")


_control_errors: list[Exception] = []


@cache
def _control_producer() -> Producer:
    return Producer(kafka.producer_config(on_delivery=_on_control_delivery))


def _on_control_delivery(err: Any, msg: Any) -> None:
    if err is not None:
        _control_errors.append(KafkaException(err))


def control_produce(deliveries: Deliveries, timeout: float = 10.0) -> None:
    """Produce control records (rare: bans, sockets over the cap) from a gateway or a
    command, and wait until Kafka holds them."""
    if deliveries:
        deliveries.produce(_control_producer())
        flush_or_raise(_control_producer(), _control_errors, timeout)
