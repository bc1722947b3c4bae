"""The Celery app. Its broker is GoChat's Kafka (kombu's confluentkafka transport);
queue names are topic names. Workers run --pool=solo with prefetch 1 and acks_late:
kombu acks by committing the consumer's current position, so any concurrent pool
can lose fetched tasks on a crash (measured: docs/reliability.md)."""

import logging
import os
import time
from collections.abc import Callable
from typing import Any, TypeVar

from celery import Celery
from celery.signals import worker_init, worker_ready

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gochat_project.settings")

app = Celery("gochat_project")
log = logging.getLogger(__name__)
T = TypeVar("T")


def _configure() -> None:
    from django.conf import settings

    from gochat_project.infra import kafka

    app.conf.update(
        # kombu's URL holds one host; kafka_common_config gives the transport every one.
        broker_url=f"confluentkafka://{settings.KAFKA_BOOTSTRAP.split(',')[0].strip()}",
        broker_transport="gochat_project.infra.kombu_kafka:Transport",  # kombu's, with per-queue consumer settings
        broker_transport_options=kafka.celery_transport_options(),
        broker_connection_retry_on_startup=True,
        task_default_queue=kafka.persist_topic(),
        task_routes={
            "messaging.persist_messages": {"queue": kafka.persist_topic()},
            "fanout.*": {"queue": kafka.fanout_topic()},
        },
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_enable_remote_control=False,
        worker_send_task_events=False,
        task_ignore_result=True,
        result_backend=None,
        task_serializer="json",
        accept_content=["json"],
        worker_hijack_root_logger=False,
    )


_configure()
app.autodiscover_tasks()


@worker_init.connect
def _serve_metrics(**_: object) -> None:
    from gochat_project.ops import malloc
    from gochat_project.ops.metrics import start_metrics_server

    malloc.tune()  # as in the gateway: at most two malloc arenas, freed memory trimmed
    start_metrics_server()


@worker_ready.connect
def _freeze_startup_objects(**_: object) -> None:
    from gochat_project.ops.runtime import freeze_startup_objects

    freeze_startup_objects()


def publish(task: Any, args: list[Any], *, queue: str, summary: str) -> None:
    """Publish a task and return once Kafka has acknowledged it; raise if it did not.

    `summary` stands in for the arguments in the message's argsrepr: Celery's own
    saferepr of them cost 0.4 ms of CPU per publish (a batch of 7 messages), more than
    the rest of the publish.
    """
    publish_started(task, args, queue=queue, summary=summary).wait()


class Publication:
    """A task handed to Kafka; wait() returns once the broker acknowledged it."""

    def __init__(self, name: str, publishes: Any) -> None:
        self.name = name
        self.publishes = publishes  # gochat_project.infra.kombu_kafka.UnflushedPublishes: producers, failures

    def wait(self) -> None:
        from confluent_kafka import KafkaException

        for producer in self.publishes.producers:
            producer.flush()
        if self.publishes.failures:  # this publication's own: the caller publishes again
            raise KafkaException(f"{self.name} not acknowledged: {self.publishes.failures[0]}")


def publish_started(task: Any, args: list[Any], *, queue: str, summary: str) -> Publication:
    """Publish a task without waiting for the broker (kombu would flush here): do other
    work, or publish more, then wait() on the result, which raises if the broker did not
    acknowledge it."""
    from gochat_project.infra import kombu_kafka

    with kombu_kafka.unflushed_publishes() as publishes:
        task.apply_async(args=args, queue=queue, argsrepr=summary, kwargsrepr="{}")
    return Publication(task.name, publishes)


def retry_in_place(fn: Callable[[], T], *, retry_on: tuple[type[BaseException], ...], what: str,
                   give_up_after: float | None = None) -> T:
    """Run fn until it succeeds, backing off 0.5 s -> 10 s, inside the running task.

    Not Celery's retry: that republishes the task with a countdown, the solo worker
    holds the copy in its timer thread, and acking it there commits on the Kafka
    consumer from a second thread, which hung the worker for good (measured: `make
    chaos`, redis fault); and any ack meanwhile commits past the held copy, so a crash
    would lose it. Retrying in place keeps the task (and its offset) where it is.
    """
    from django.db import connection

    delay, started = 0.5, time.monotonic()
    while True:
        try:
            return fn()
        except retry_on as exc:
            if give_up_after is not None and time.monotonic() - started > give_up_after:
                raise
            log.warning("%s failed (%s: %s); retrying in %.1fs", what, type(exc).__name__, exc, delay)
            connection.close()  # a MySQL restart leaves a dead connection behind
            time.sleep(delay)
            delay = min(delay * 2, 10.0)
