"""Kafka in one place: topic names, and the client configs every producer and
consumer of GoChat is built from (as Sentry's kafka_config does)."""

from typing import Any

from django.conf import settings

# Measured on Tansu (../shared/FIELD-NOTES.md): without these a group join takes
# ~20 s and produce->consume latency is p50 128 ms instead of ~3 ms.
_CONSUMER_TUNING = {
    "session.timeout.ms": 6000,
    "heartbeat.interval.ms": 500,
    "fetch.wait.max.ms": 10,
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
    """Every topic of ARCHITECTURE.md with its configured partition count."""
    topics = {
        upstream_topic(): settings.GOCHAT_UPSTREAM_PARTITIONS,
        persist_topic(): settings.GOCHAT_PERSIST_PARTITIONS,
        fanout_topic(): settings.GOCHAT_FANOUT_PARTITIONS,
    }
    for gateway_id in settings.GOCHAT_GATEWAY_IDS:
        topics[downstream_topic(gateway_id)] = settings.GOCHAT_DOWNSTREAM_PARTITIONS
    return topics


def common_config() -> dict[str, Any]:
    return {"bootstrap.servers": settings.KAFKA_BOOTSTRAP}


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
    """kombu confluentkafka transport options (FIELD-NOTES: tuned for pick-up latency)."""
    return {
        "kafka_common_config": common_config(),
        "kafka_consumer_config": {**_CONSUMER_TUNING, "max.poll.interval.ms": 300000},
        # gochat_project.kombu_kafka applies these to one queue's consumer.
        "kafka_consumer_config_by_queue": {
            persist_topic(): {"fetch.wait.max.ms": settings.GOCHAT_PERSIST_FETCH_WAIT_MS},
        },
        "kafka_producer_config": {"linger.ms": 0, "acks": "all", "on_delivery": celery_delivery_report},
        # gochat_project.kombu_kafka: acks are committed together, at most this often.
        "kafka_commit_interval_ms": settings.GOCHAT_CELERY_COMMIT_INTERVAL_MS,
        "num_partitions": settings.GOCHAT_PERSIST_PARTITIONS,
    }


# kombu's transport flushes after each publish but never reports a failed
# delivery; this callback (installed through kafka_producer_config) does.
CELERY_PUBLISH_ERRORS: list[Exception] = []


def celery_delivery_report(err: Any, msg: Any) -> None:
    if err is not None:
        CELERY_PUBLISH_ERRORS.append(RuntimeError(str(err)))


class GroupLagProbe:
    """Records of a topic not yet committed by a consumer group, measured repeatedly.

    Tansu bug (FIELD-NOTES.md): a ListOffsets "latest" lookup under-reports the
    high watermark, so query_watermark_offsets() cannot be trusted. The watermark
    carried in fetch responses is right: the probe assigns the partitions (no
    group join, so the group's members are not disturbed), seeks to the group's
    committed offsets, waits for one fresh fetch per partition (a record or the
    partition EOF) and reads get_watermark_offsets(cached=True).
    """

    def __init__(self, group_id: str, topic_name: str) -> None:
        from confluent_kafka import Consumer

        self.topic = topic_name
        self.consumer = Consumer(consumer_config(group_id, **{"enable.partition.eof": True}))
        self.partitions: list[int] = []

    def lag(self, timeout: float = 5.0) -> int:
        from confluent_kafka import OFFSET_BEGINNING, TopicPartition

        if not self.partitions:
            meta = self.consumer.list_topics(self.topic, timeout=timeout)
            self.partitions = sorted(meta.topics[self.topic].partitions)
            self.consumer.assign([TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in self.partitions])
        tps = [TopicPartition(self.topic, p) for p in self.partitions]
        committed = {tp.partition: tp.offset for tp in self.consumer.committed(tps, timeout=timeout)}
        for p in self.partitions:
            start = committed[p] if committed[p] >= 0 else OFFSET_BEGINNING
            self.consumer.seek(TopicPartition(self.topic, p, start))
        self.consumer.resume(tps)
        try:
            return self._lag_after_fetch(committed, timeout)
        finally:
            # Between measurements the probe must not fetch: an assigned consumer keeps
            # prefetching the whole topic (measured: logic's fence probe grew logic by
            # 18 MiB in 4 minutes and kept the in-memory broker busy serving it).
            self.consumer.pause(tps)

    def _lag_after_fetch(self, committed: dict[int, int], timeout: float) -> int:
        import time

        from confluent_kafka import KafkaError, TopicPartition

        fresh: set[int] = set()
        deadline = time.monotonic() + timeout
        while len(fresh) < len(self.partitions):
            if time.monotonic() > deadline:
                raise TimeoutError(f"no fetch response for {self.topic} within {timeout}s")
            for m in self.consumer.consume(num_messages=len(self.partitions), timeout=0.05):
                error = m.error()
                if error is None or error.code() == KafkaError._PARTITION_EOF:
                    fresh.add(m.partition())
        lag = 0
        for p in self.partitions:
            _, high = self.consumer.get_watermark_offsets(TopicPartition(self.topic, p), cached=True)
            lag += max(0, high - max(committed[p], 0))
        return lag

    def close(self) -> None:
        self.consumer.close()


def consumer_group_lag(group_id: str, topic_name: str, timeout: float = 5.0, *, drain_wait: float = 0.0) -> int:
    """The group's lag on the topic. With drain_wait, measured again every 0.2 s until it
    is 0 or drain_wait seconds have passed: a group that commits on an interval (the
    Celery workers, every 200 ms) lags a moment behind what it has done."""
    import time

    probe = GroupLagProbe(group_id, topic_name)
    deadline = time.monotonic() + drain_wait
    try:
        while (lag := probe.lag(timeout)) and time.monotonic() < deadline:
            time.sleep(0.2)
        return lag
    finally:
        probe.close()


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
