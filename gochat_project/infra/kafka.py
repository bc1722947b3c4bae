"""Kafka in one place: topic names, and the client configs every producer and
consumer of GoChat is built from (as Sentry's kafka_config does)."""

import logging
from typing import Any

from django.conf import settings

# Group timeouts: a consumer that dies (kill -9) hands its partitions on after 6 s, not
# the client default of 45 s. A fetch waits at the broker until data arrives (Kafka
# answers a long poll at once on a produce), so fetch.wait.max.ms bounds only idle
# polls: 100 ms costs no latency and ~10 idle fetches a second per consumer.
_CONSUMER_TUNING = {
    "session.timeout.ms": 6000,
    "heartbeat.interval.ms": 1000,
    "fetch.wait.max.ms": 100,
}


def topic(name: str) -> str:
    return f"{settings.GOCHAT_TOPIC_PREFIX}.{name}"


def upstream_topic() -> str:
    return topic("messages.upstream")


def persist_topic() -> str:
    return topic("messages.persist")


def fanout_topic() -> str:
    return topic("tasks.fanout")


def downstream_topic(gateway_id: str) -> str:
    return topic(f"messages.downstream.{gateway_id}")


def all_topics() -> dict[str, int]:
    """Every topic of docs/architecture.md with its configured partition count."""
    topics = {
        upstream_topic(): settings.GOCHAT_UPSTREAM_PARTITIONS,
        persist_topic(): settings.GOCHAT_PERSIST_PARTITIONS,
        fanout_topic(): settings.GOCHAT_FANOUT_PARTITIONS,
    }
    for gateway_id in settings.GOCHAT_GATEWAY_IDS:
        topics[downstream_topic(gateway_id)] = settings.GOCHAT_DOWNSTREAM_PARTITIONS
    return topics


def common_config() -> dict[str, Any]:
    """Every client's connection settings: bootstrap servers and the operator's
    security, TLS and other librdkafka settings (settings.kafka_client_settings)."""
    config: dict[str, Any] = {"bootstrap.servers": settings.KAFKA_BOOTSTRAP, **settings.KAFKA_CLIENT_SETTINGS}
    if settings.GOCHAT_LOG_JSON:
        # librdkafka writes its own lines to stderr; asked for JSON, route them through
        # Python's logging (they are then emitted when the client polls).
        config["logger"] = logging.getLogger("librdkafka")
    return config


def producer_config(**overrides: Any) -> dict[str, Any]:
    return {
        **common_config(),
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 1,
        "batch.num.messages": 10000,
        "compression.type": "none",
        **overrides,
    }


class ProducerHandle:
    """A producer and its own delivery-error path (producer_build). Produce on `.client`
    (confluent-kafka's Producer) directly: no wrapper call per record on hot paths.

    A failed delivery is recorded on this handle only, and raised once by its next
    flush_or_raise; with keep_failures=False (fire-and-forget producers, whose callers
    never wait) it is logged instead and nothing accumulates."""

    def __init__(self, name: str, *, keep_failures: bool, **overrides: Any) -> None:
        from confluent_kafka import Producer

        self.name = name
        self._keep_failures = keep_failures
        self._failures: list[str] = []
        self.client = Producer(producer_config(on_delivery=self._on_delivery, **overrides))

    def _on_delivery(self, err: Any, msg: Any) -> None:
        if err is None:
            return
        if self._keep_failures:
            self._failures.append(str(err))
        else:
            logging.getLogger(__name__).error("%s produce failed: %s", self.name, err)

    def flush_or_raise(self, timeout: float = 30.0) -> None:
        """Wait until every record produced here is acknowledged; raise if one is not, or failed."""
        from confluent_kafka import KafkaException

        remaining = self.client.flush(timeout)
        if remaining:
            raise KafkaException(f"{self.name}: {remaining} records not acknowledged after {timeout}s")
        if self._failures:
            first, self._failures = self._failures[0], []
            raise KafkaException(f"{self.name}: produce failed: {first}")


def producer_build(name: str, *, keep_failures: bool = True, **overrides: Any) -> ProducerHandle:
    """The one way GoChat's own code builds a producer (gateway upstream, logic, fan-out):
    producer_config plus overrides, and one delivery-error path per producer."""
    return ProducerHandle(name, keep_failures=keep_failures, **overrides)


def consumer_config(group_id: str, **overrides: Any) -> dict[str, Any]:
    return {
        **common_config(),
        "group.id": group_id,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        **_CONSUMER_TUNING,
        **overrides,
    }


def celery_transport_options() -> dict[str, Any]:
    """kombu confluentkafka transport options: GoChat's connection and consumer settings
    (a task is picked up as soon as it is written), an idempotent acks=all producer."""
    return {
        "kafka_common_config": common_config(),
        "kafka_consumer_config": {**_CONSUMER_TUNING, "max.poll.interval.ms": 300000},
        # Failed deliveries: a callback per publication (gochat_project.infra.kombu_kafka).
        "kafka_producer_config": {"linger.ms": 0, "acks": "all", "enable.idempotence": True},
        # gochat_project.infra.kombu_kafka: acks are committed together, at most this often.
        "kafka_commit_interval_ms": settings.GOCHAT_CELERY_COMMIT_INTERVAL_MS,
        # Should kombu create a queue's topic (services up normally has), as GoChat would.
        "num_partitions": settings.GOCHAT_PERSIST_PARTITIONS,
        "replication_factor": settings.GOCHAT_KAFKA_REPLICATION_FACTOR,
    }


def consumer_group_lag(group_id: str, topic_name: str, timeout: float = 5.0, *, drain_wait: float = 0.0) -> int:
    """Records of the topic not yet committed by the group: the partitions' end offsets
    (ListOffsets) minus the group's committed offsets (OffsetFetch). With drain_wait,
    measured again every 0.2 s until it is 0 or drain_wait seconds have passed: a group
    that commits on an interval (the Celery workers, every 200 ms) lags a moment behind
    what it has done."""
    import time

    deadline = time.monotonic() + drain_wait
    while (lag := _group_lag_retrying(group_id, topic_name, timeout)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return lag


def _group_lag_retrying(group_id: str, topic_name: str, timeout: float) -> int:
    """_group_lag, asked again for up to timeout while the broker answers a retriable
    error (NOT_COORDINATOR, COORDINATOR_LOAD_IN_PROGRESS: a new or failing-over broker)."""
    import time

    from confluent_kafka import KafkaError, KafkaException

    coordinator_moving = {KafkaError.NOT_COORDINATOR, KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
                          KafkaError.COORDINATOR_NOT_AVAILABLE}
    deadline = time.monotonic() + timeout
    while True:
        try:
            return _group_lag(group_id, topic_name, timeout)
        except KafkaException as exc:
            error = exc.args[0]
            if not (error.retriable() or error.code() in coordinator_moving) or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


_ADMIN: Any = None
_OFFSET_READERS: dict[str, Any] = {}


def _admin() -> Any:
    from confluent_kafka.admin import AdminClient

    global _ADMIN
    if _ADMIN is None:
        _ADMIN = AdminClient(common_config())
    return _ADMIN


def _offset_reader(group_id: str) -> Any:
    """A consumer of the group that never subscribes (so it never joins the group or
    disturbs its members), used only to read the group's committed offsets (OffsetFetch).
    Not AdminClient.list_consumer_group_offsets: in librdkafka 2.16 it crashes the process
    when the broker answers NOT_COORDINATOR, as a fresh or failing-over broker does
    (seen here; librdkafka issue 5040)."""
    from confluent_kafka import Consumer

    if group_id not in _OFFSET_READERS:
        _OFFSET_READERS[group_id] = Consumer(consumer_config(group_id))
    return _OFFSET_READERS[group_id]


def _group_lag(group_id: str, topic_name: str, timeout: float) -> int:
    from confluent_kafka import TopicPartition
    from confluent_kafka.admin import OffsetSpec

    admin = _admin()
    meta = admin.list_topics(topic_name, timeout=timeout).topics[topic_name]
    if meta.error is not None:
        raise RuntimeError(f"topic {topic_name}: {meta.error}")
    partitions = [TopicPartition(topic_name, p) for p in sorted(meta.partitions)]
    ends = admin.list_offsets({tp: OffsetSpec.latest() for tp in partitions}, request_timeout=timeout)
    committed = {tp.partition: tp.offset for tp in _offset_reader(group_id).committed(partitions, timeout=timeout)}
    lag = 0
    for tp, future in ends.items():
        end = future.result(timeout).offset
        lag += max(0, end - max(committed.get(tp.partition, -1), 0))
    return lag


def celery_consumer_group(queue: str) -> str:
    """The group kombu's confluentkafka transport consumes a queue with."""
    return f"{queue}-consumer-group"


def consume_available(consumer: Any, max_messages: int, timeout: float) -> list[Any]:
    """Wait up to timeout for the first record, then take what is already fetched.

    consume(n, timeout) alone waits the whole timeout unless n records arrive,
    which put the timeout on the latency of every quiet-time message.
    """
    first = consumer.poll(timeout)
    if first is None:
        return []
    return [first, *consumer.consume(num_messages=max_messages - 1, timeout=0)] if max_messages > 1 else [first]
