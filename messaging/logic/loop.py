"""The logic process's consume loop: poll upstream, run each batch through the
pipeline (pipeline.py), store offsets once the batch's deliveries are acknowledged
(librdkafka commits them in the background), rewind and retry on failure."""

import contextlib
import logging
import threading
import time

from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka import Message as KafkaMessage
from django.db import close_old_connections

from gochat_project.infra import kafka, redis_client
from messaging import metrics
from messaging.logic import logic_group_id
from messaging.logic.pipeline import Pipeline
from messaging.snowflake import Snowflake

log = logging.getLogger(__name__)


class Logic:
    def __init__(self, *, batch_size: int = 1000, poll_timeout: float = 0.1) -> None:
        self.batch_size = batch_size
        self.poll_timeout = poll_timeout
        self.stop_event = threading.Event()
        self.producer = kafka.producer_build("logic deliveries")
        worker = int(redis_client.client().incr(redis_client.key("snowflake_worker"))) % 1024
        self.pipeline = Pipeline(self.producer, Snowflake(worker), self.stop_event)

    def run(self) -> None:
        # Offsets are stored once a batch's deliveries are acknowledged and committed by
        # librdkafka in the background (every 200 ms): no commit request per batch. A crash
        # loses at most the last interval's commits, and those batches are consumed again,
        # which every step tolerates.
        consumer = Consumer(kafka.consumer_config(logic_group_id(), **{
            "max.poll.interval.ms": 600000, "enable.auto.commit": True, "enable.auto.offset.store": False,
            "auto.commit.interval.ms": 200}))
        consumer.subscribe([kafka.upstream_topic()])
        log.info("logic consuming %s as %s", kafka.upstream_topic(), logic_group_id())
        backoff = 0.1
        lag_reported = 0.0
        # Batches whose deliveries are produced but not yet acknowledged. The next batch
        # does not wait for them: their offsets are stored once the producer has drained.
        unsettled: list[KafkaMessage] = []
        try:
            while not self.stop_event.is_set():
                if time.monotonic() - lag_reported > 5:
                    self._report_lag(consumer)
                    lag_reported = time.monotonic()
                batch = kafka.consume_available(consumer, self.batch_size, self.poll_timeout)
                records = [m for m in batch if m.error() is None]
                for m in batch:
                    if m.error() is not None:
                        log.warning("upstream consume error: %s", m.error())
                try:
                    if unsettled:
                        self._settle(consumer, unsettled, wait=not records or len(unsettled) >= self.batch_size)
                    if records:
                        self.pipeline.process_records(records)
                        unsettled.extend(records)
                        records = []
                    backoff = 0.1
                except Exception:
                    failed = unsettled + records
                    log.exception("batch of %d failed; rewinding to retry in %.1fs", len(failed), backoff)
                    close_old_connections()
                    self._rewind(consumer, failed)
                    unsettled.clear()
                    self.stop_event.wait(backoff)
                    backoff = min(backoff * 2, 5.0)
            if unsettled:
                self._settle(consumer, unsettled, wait=True)
        finally:
            consumer.close()
            self.producer.client.flush(10)

    def _settle(self, consumer: Consumer, unsettled: list[KafkaMessage], *, wait: bool) -> None:
        """Store the offsets of unsettled batches once every delivery is acknowledged
        (without waiting for that unless wait); raise if a delivery failed."""
        if not wait and self.producer.client.flush(0):
            return  # still in flight: settled after a later batch
        self.producer.flush_or_raise()
        consumer.store_offsets(offsets=self._next_offsets(unsettled))
        unsettled.clear()

    @staticmethod
    def _report_lag(consumer: Consumer) -> None:
        """Lag from the high watermarks the fetch responses carried: no request to the broker."""
        lag = 0
        assignment = consumer.assignment()
        for tp, pos in zip(assignment, consumer.position(assignment), strict=True):
            watermarks = consumer.get_watermark_offsets(tp, cached=True)
            if watermarks and watermarks[1] >= 0 and pos.offset >= 0:
                lag += max(0, watermarks[1] - pos.offset)
        metrics.CONSUMER_LAG.labels(kafka.upstream_topic()).set(lag)

    @staticmethod
    def _next_offsets(records: list[KafkaMessage]) -> list[TopicPartition]:
        """Per partition, the offset after the batch's last record: what to commit."""
        last: dict[tuple[str, int], int] = {}
        for m in records:
            k, offset = _position(m)
            last[k] = max(last.get(k, -1), offset)
        return [TopicPartition(t, p, offset + 1) for (t, p), offset in last.items()]

    @staticmethod
    def _rewind(consumer: Consumer, records: list[KafkaMessage]) -> None:
        first: dict[tuple[str, int], int] = {}
        for m in records:
            k, offset = _position(m)
            first[k] = min(first.get(k, offset), offset)
        for (topic, partition), offset in first.items():
            # A partition revoked meanwhile: its new owner starts from the committed offset.
            with contextlib.suppress(KafkaException):
                consumer.seek(TopicPartition(topic, partition, offset))


def _position(m: KafkaMessage) -> tuple[tuple[str, int], int]:
    """((topic, partition), offset) of a consumed record. confluent-kafka types all three
    Optional (a message built for producing has none); a consumed record has them all."""
    topic, partition, offset = m.topic(), m.partition(), m.offset()
    assert topic is not None and partition is not None and offset is not None
    return (topic, partition), offset
