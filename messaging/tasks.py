"""Celery tasks of messaging: thin wrappers over services, idempotent, acks_late."""

from typing import Any

from celery import shared_task
from django.db import DatabaseError, InterfaceError

from messaging import metrics, services


@shared_task(
    name="messaging.persist_messages",
    acks_late=True,
    autoretry_for=(DatabaseError, InterfaceError),
    retry_backoff=0.5,
    retry_backoff_max=10,
    retry_jitter=True,
    max_retries=None,  # an acked message must be stored: retry until the database is back
)
def persist_messages(messages: list[dict[str, Any]]) -> int:
    inserted = services.messages_store(messages=messages)
    metrics.PERSISTED.inc(inserted)
    return inserted
