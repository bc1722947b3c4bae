"""gochat_project.infra.kombu_kafka against the test broker: acks are committed together, not
one OffsetCommit per task, and nothing acked is lost on close or requeue."""

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition
from django.conf import settings
from kombu import Connection

from gochat_project.infra import kafka


def _committed(queue: str) -> int:
    """The queue's committed offset as the broker has it (-1001: none)."""
    probe = Consumer(kafka.consumer_config(kafka.celery_consumer_group(queue)))
    try:
        [tp] = probe.committed([TopicPartition(queue, 0)], timeout=10)
        return tp.offset
    finally:
        probe.close()


@pytest.fixture
def queue() -> Iterator[tuple[Any, str]]:
    name = f"test-commits-{uuid.uuid4().hex[:8]}"
    options = {**kafka.celery_transport_options(), "kafka_commit_interval_ms": 60_000, "num_partitions": 1}
    conn = Connection(f"confluentkafka://{settings.KAFKA_BOOTSTRAP}",
                      transport="gochat_project.infra.kombu_kafka:Transport",
                      transport_options=options)
    simple = conn.SimpleQueue(name)
    simple.consumer.qos(prefetch_count=1)  # as Celery's workers run (prefetch 1)
    for n in range(5):
        simple.put({"n": n})
    yield simple, name
    simple.close()
    conn.release()


def _get(simple: Any) -> Any:
    return simple.get(timeout=20)


def test_acks_wait_for_the_interval_and_the_close_commits_them(queue) -> None:
    simple, name = queue
    for n in range(5):
        message = _get(simple)
        assert message.payload == {"n": n}
        message.ack()
    assert _committed(name) < 0  # 5 acks inside one interval: no commit request yet
    simple.consumer.channel.close()
    assert _committed(name) == 5


def test_a_requeue_commits_what_was_acked_and_gets_the_message_again(queue) -> None:
    simple, name = queue
    for _ in range(2):
        _get(simple).ack()
    third = _get(simple)
    assert third.payload == {"n": 2}
    third.requeue()
    assert _committed(name) == 2
    again = _get(simple)
    assert again.payload == {"n": 2}
    again.ack()
