"""kombu's confluentkafka transport, with fewer commits and publishes left unflushed.

kombu commits a consumer's position on every ack: one OffsetCommit request (and a
write to the broker's offsets topic) per task. Here an ack only notes the position,
and the noted positions are committed at most every `kafka_commit_interval_ms` (a
poll waits no longer than the next one is due), before a requeue, and when the
channel closes. A worker killed in between runs the last interval's tasks again: GoChat's tasks are
idempotent (a stored message is not stored twice, a chunk pushed twice is dropped by
clients by its message_id), as with kombu's own commits for the running task.

kombu also naps a second after every poll that returned nothing; here it does not (the
poll already waits for the next record), so a task is picked up as soon as it is written.

kombu also flushes the producer inside every publish. Within `unflushed_publishes()`
a publish only hands the message to the producer, and the caller flushes the
producers it collected when it needs the broker's acknowledgement (logic builds a
batch's deliveries meanwhile).
"""

import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from queue import Empty
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition
from kombu.transport import confluentkafka
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps, loads

from gochat_project.infra.kafka import celery_consumer_group

log = logging.getLogger(__name__)


_unflushed = threading.local()


class UnflushedPublishes:
    """What publishes inside one unflushed_publishes() block used: the producers to flush,
    and their failed deliveries, reported by a per-message callback. Each block has its
    own, so a failure reaches the publication it belongs to and no other."""

    def __init__(self) -> None:
        self.producers: list[Producer] = []
        self.failures: list[str] = []

    def on_delivery(self, err: Any, msg: Any) -> None:
        if err is not None:
            self.failures.append(str(err))


@contextlib.contextmanager
def unflushed_publishes() -> Iterator[UnflushedPublishes]:
    """Publishes in this thread, inside the block, return without flushing; yields what
    they used, for the caller to flush and check (gochat_project.celery.Publication)."""
    publishes = UnflushedPublishes()
    _unflushed.publishes = publishes
    try:
        yield publishes
    finally:
        _unflushed.publishes = None


ERROR_PAUSE_S = 1.0  # after a consumer error (the broker unreachable): not a busy loop of errors


def consumer_config(queue: str, common: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
    """What kombu configures for this queue's consumer (same group, so committed
    offsets carry over)."""
    return {
        "group.id": celery_consumer_group(queue),
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        **common,
        **(options.get("kafka_consumer_config") or {}),
    }


class QoS(confluentkafka.QoS):
    def ack(self, delivery_tag: Any) -> None:
        if delivery_tag not in self._not_yet_acked:
            return
        message = self._not_yet_acked.pop(delivery_tag)
        self.channel.note_acked(message.topic)

    def reject(self, delivery_tag: Any, requeue: bool = False) -> None:
        if requeue:  # kombu seeks back to the committed offset: commit what was acked first
            self.channel.commit_acked(force=True)
        super().reject(delivery_tag, requeue)


class Channel(confluentkafka.Channel):
    QoS = QoS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._acked: dict[str, list[TopicPartition]] = {}  # queue -> positions not committed yet
        self._last_commit = time.monotonic()
        self._commit_interval_s = (self.options.get("kafka_commit_interval_ms") or 0) / 1000

    def _get_consumer(self, queue: str) -> Any:
        name = self.sanitize_queue_name(queue)
        if name not in self._kafka_consumers:
            consumer = Consumer(consumer_config(name, self.common_config, self.options))
            consumer.subscribe([name])
            self._kafka_consumers[name] = consumer
        return self._kafka_consumers[name]

    def note_acked(self, queue: str) -> None:
        """Everything this queue's consumer has handed out is done (prefetch 1: the task
        just acked); its position is committed with the next commit."""
        consumer = self._get_consumer(queue)
        self._acked[queue] = [tp for tp in consumer.position(consumer.assignment()) if tp.offset >= 0]
        self.commit_acked()

    def commit_acked(self, force: bool = False) -> None:
        """Commit the noted positions if the interval has passed (or force: at once, and
        wait for the broker's answer)."""
        if not self._acked or not (force or time.monotonic() - self._last_commit >= self._commit_interval_s):
            return
        acked, self._acked = self._acked, {}
        self._last_commit = time.monotonic()
        for queue, offsets in acked.items():
            consumer = self._kafka_consumers.get(queue)
            if consumer is not None and offsets:
                consumer.commit(offsets=offsets, asynchronous=not force)

    def _put(self, queue: str, message: Any, **kwargs: Any) -> None:
        publishes: UnflushedPublishes | None = getattr(_unflushed, "publishes", None)
        if publishes is None:
            super()._put(queue, message, **kwargs)
            return
        name = self.sanitize_queue_name(queue)
        producer = self._get_producer(name)
        # kombu never reports a failed delivery; this publication's callback does.
        producer.produce(name, str_to_bytes(dumps(message)), on_delivery=publishes.on_delivery)
        producer.poll(0)
        if producer not in publishes.producers:
            publishes.producers.append(producer)

    def _get(self, queue: str, **kwargs: Any) -> Any:  # type: ignore[override]  # kombu's own bases disagree
        """kombu's, with the poll cut short while acked positions wait for their commit."""
        self.commit_acked()
        timeout = self.wait_time_seconds
        if self._acked:
            timeout = min(timeout, max(0.0, self._last_commit + self._commit_interval_s - time.monotonic()))
        message = self._get_consumer(queue).poll(timeout)
        if message is None:
            raise Empty()
        if message.error():
            log.error("%s", message.error())
            time.sleep(ERROR_PAUSE_S)  # the nap kombu took after every empty poll, now only here
            raise Empty()
        return {**loads(message.value()), "topic": message.topic()}

    def close(self) -> None:
        try:
            self.commit_acked(force=True)
        except Exception:  # a broker gone at shutdown: those tasks run again
            log.warning("committing acked offsets at close failed", exc_info=True)
        super().close()


class Transport(confluentkafka.Transport):
    Channel = Channel
    # kombu sleeps this long after every poll that returned nothing (1 s by default): a
    # record arriving meanwhile waited for the nap to end, after each quiet spell and after
    # each short poll that waits for a commit. The poll itself waits for the next record,
    # so there is nothing to nap for.
    polling_interval = 0.0
