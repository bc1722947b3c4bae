"""Celery tasks of messaging: thin wrappers over services, idempotent, acks_late."""

from typing import Any

from celery import shared_task
from django.db import DatabaseError, InterfaceError
from redis.exceptions import RedisError

from gochat_project.celery import retry_in_place
from messaging import metrics, services


@shared_task(name="messaging.persist_messages", acks_late=True)
def persist_messages(messages: list[dict[str, Any]]) -> int:
    # Storing touches MySQL and Redis (recall marks). An acked message must be stored:
    # while either is down, wait here; a task that failed would still be acked and lost.
    inserted = retry_in_place(lambda: services.messages_store(messages=messages),
                              retry_on=(DatabaseError, InterfaceError, RedisError),
                              what=f"storing {len(messages)} messages")
    metrics.PERSISTED.inc(inserted)
    return inserted
