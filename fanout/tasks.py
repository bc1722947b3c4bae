"""Large-group fan-out (seed flow 4). Logic has already persisted and acked; a
fan-out job splits each message's member list into chunks of GOCHAT_FANOUT_CHUNK,
each chunk its own task: filter the online members (one ZMSCORE), look up their
gateways (one pipeline), produce one delivery per gateway.

Chunk tasks are safe to run twice: a member may get a duplicate push (clients
dedupe by message_id), never a missing one. Offline members catch up by `sync`.
"""

import logging
import time
from functools import cache

from celery import shared_task
from django.conf import settings

from fanout import metrics, presence
from fanout.downstream import Deliveries
from gochat_project.celery import publish_started, retry_in_place
from gochat_project.infra import kafka
from groups.selectors import group_member_ids

log = logging.getLogger(__name__)


@cache
def _producer() -> kafka.ProducerHandle:
    return kafka.producer_build("fan-out deliveries")


# Pushes are best effort (members catch up by `sync`), but worth a retry in place while
# Redis, MySQL or the broker come back; after a minute the task gives up.
GIVE_UP_AFTER_S = 60.0


@shared_task(name="fanout.fanout_frames", acks_late=True)
def fanout_frames(items: list[tuple[int, str]]) -> int:
    """Split each (group id, frame) into chunk tasks over the group's members. Returns how many chunks."""
    return retry_in_place(lambda: _fanout_frames(items), retry_on=(Exception,), what="fan-out job",
                          give_up_after=GIVE_UP_AFTER_S)


def _fanout_frames(items: list[tuple[int, str]]) -> int:
    chunk = settings.GOCHAT_FANOUT_CHUNK
    pending = []  # published together, acknowledged together: not one broker round trip per chunk
    for group_id, frame in items:
        members = group_member_ids(group_id=group_id)
        for start in range(0, len(members), chunk):
            part = members[start:start + chunk]
            pending.append(publish_started(deliver_chunk, [frame, part], queue=kafka.fanout_topic(),
                                           summary=f"[frame, {len(part)} members]"))
    for publication in pending:
        publication.wait()
    return len(pending)


@shared_task(name="fanout.deliver_chunk", acks_late=True)
def deliver_chunk(frame: str, user_ids: list[int]) -> int:
    """Push one message to the online members among user_ids. Returns how many were online."""
    return retry_in_place(lambda: _deliver_chunk(frame, user_ids), retry_on=(Exception,), what="delivery chunk",
                          give_up_after=GIVE_UP_AFTER_S)


def _deliver_chunk(frame: str, user_ids: list[int]) -> int:
    started = time.perf_counter()
    online = presence.online_filter(user_ids)
    gateways = presence.gateways_of_users(online)
    by_gateway: dict[str, list[int]] = {}
    for uid, gws in gateways.items():
        for gw in gws:
            by_gateway.setdefault(gw, []).append(uid)
    deliveries = Deliveries()
    for gw, uids in by_gateway.items():
        deliveries.to_users(gw, frame, uids)
    if deliveries:
        deliveries.produce(_producer().client)
        _producer().flush_or_raise()
    metrics.CHUNK_SECONDS.observe(time.perf_counter() - started)
    return len(online)
