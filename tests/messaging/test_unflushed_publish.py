"""Publishing without kombu's flush per message (gochat_project.infra.kombu_kafka,
gochat_project.celery.publish_started): logic overlaps its persistence task's write with
routing, and a fan-out job writes all its chunk tasks before waiting once."""

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka import KafkaException, Producer
from django.conf import settings
from kombu import Connection

from gochat_project.celery import Publication
from gochat_project.infra import kafka, kombu_kafka


@pytest.fixture
def queue() -> Iterator[Any]:
    conn = Connection(f"confluentkafka://{settings.KAFKA_BOOTSTRAP}",
                      transport="gochat_project.infra.kombu_kafka:Transport",
                      transport_options={**kafka.celery_transport_options(), "num_partitions": 1})
    simple = conn.SimpleQueue(f"test-unflushed-{uuid.uuid4().hex[:8]}")
    yield simple
    simple.close()
    conn.release()


def test_a_plain_publish_waits_for_the_broker(queue) -> None:
    queue.put({"n": 0})
    [producer] = queue.channel._kafka_producers.values()
    assert len(producer) == 0  # kombu's flush: acknowledged before put returned


def test_publishes_inside_the_block_return_at_once_and_arrive_after_one_wait(queue) -> None:
    with kombu_kafka.unflushed_publishes() as publishes:
        for n in range(3):
            queue.put({"n": n})
    [producer] = publishes.producers
    assert len(producer) == 3  # handed to the producer, none acknowledged yet
    Publication("test", publishes).wait()
    assert len(producer) == 0
    assert [queue.get(timeout=20).payload["n"] for _ in range(3)] == [0, 1, 2]
    queue.put({"n": 3})  # outside the block: flushed again, as kombu does
    assert len(producer) == 0


def test_wait_raises_when_the_broker_does_not_acknowledge_and_only_for_its_own_publication() -> None:
    failing, other = kombu_kafka.UnflushedPublishes(), kombu_kafka.UnflushedPublishes()
    producer = Producer({"bootstrap.servers": "127.0.0.1:1", "message.timeout.ms": 300, "log_level": 0})
    producer.produce("test-nowhere", b"x", on_delivery=failing.on_delivery)
    failing.producers.append(producer)
    with pytest.raises(KafkaException, match="not acknowledged"):
        Publication("messaging.persist_messages", failing).wait()
    Publication("messaging.persist_messages", other).wait()  # the failure is not another waiter's
