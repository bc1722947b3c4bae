"""Message ids and seqs for a batch of accepted sends, with the fence.

Seqs come from one Redis script per batch (messaging/sequences.py), idempotent per
(sender, client_msg_id). Redis having lost its counters (no `seq_epoch` sentinel) is the
fenced case: hold the batch, with no ack, until every persistence task already published
is stored, then seed the counters from MySQL's MAX(seq) (docs/architecture.md, "Fenced
re-seeding")."""

import logging
import threading
import time

from gochat_project.infra import kafka, redis_client
from messaging import selectors as message_selectors
from messaging import sequences
from messaging.rules import Send
from messaging.selectors import StoredRows
from messaging.snowflake import Snowflake

log = logging.getLogger(__name__)

Stored = dict[tuple[int, str, str], sequences.Assigned]  # by (sender, conversation, client_msg_id)


def assigned_from_rows(stored: StoredRows) -> Stored:
    return {key: sequences.Assigned(mid, seq, ts, cid, False) for key, (mid, seq, ts, cid) in stored.items()}


def _key(send: Send) -> tuple[int, str, str]:
    """A send's idempotency key: a resend repeats all three."""
    return send.event.sender_id, send.ref.conversation_id, send.event.client_msg_id


class SeqAssigner:
    def __init__(self, snowflake: Snowflake, stop_event: threading.Event) -> None:
        self.snowflake = snowflake
        self.stop_event = stop_event  # ends a fence wait when the process stops

    def assign(self, sends: list[Send], stored: Stored) -> list[sequences.Assigned]:
        """stored: the sends already in MySQL, as the send rules found them."""
        while True:
            todo = [s for s in sends if _key(s) not in stored]
            args = []
            for s in todo:
                message_id, ts = self.snowflake.next_id()
                args.append((s.ref.conversation_id, s.event.sender_id, s.event.client_msg_id, message_id, ts))
            assigned = self._assign_in_redis(args) if args else []
            if assigned is not None:
                break
            # Re-seeded after persistence drained: a resend whose first copy was stored
            # meanwhile must get that copy's ack. A new seq for it would never be stored
            # (the first copy holds its client_msg_id) and leave a gap. Look again.
            stored = self._stored_duplicates(sends)
        fresh = iter(assigned)
        out = []
        for s in sends:
            key = _key(s)
            out.append(stored[key] if key in stored else next(fresh))
        return out

    def _assign_in_redis(self, args: list[tuple[str, int, str, int, int]]) -> list[sequences.Assigned] | None:
        """Seqs from Redis; None when Redis had lost its counters and they were re-seeded."""
        while True:
            try:
                return sequences.assign(args)
            except sequences.FenceRequired:
                # Fence every group that lost its marker, not only this batch's: a Redis
                # (or node) that restarted empty lost all of its groups at once, and fencing
                # them one by one as traffic reaches each would hold sends up to 64 times.
                # Once persistence has drained, a missing counter is seeded from MySQL on
                # first use (SeedRequired), so marking them all here is safe.
                lost = sequences.buckets_without_epoch()
                log.warning("sequence counters of %d slot groups are gone from Redis: waiting for persistence "
                            "to drain", len(lost))
                self._await_persistence_drained()
                sequences.seed_counters({a[0] for a in args if redis_client.bucket_of(a[0]) in lost})
                sequences.mark_counters_epoch(lost)
                return None
            except sequences.SeedRequired as need:
                # The epoch marker is present, so Redis kept every counter it was given:
                # a missing one belongs to a conversation that never had a seq, and
                # nothing of it can be waiting for persistence. Seed from MySQL at once.
                sequences.seed_counters(need.conversation_ids)

    def _await_persistence_drained(self) -> None:
        """Fence: no seq may be (re)seeded while acked messages still wait for storage."""
        topic = kafka.persist_topic()
        reported = time.monotonic()
        while not self.stop_event.is_set():
            try:
                lag = kafka.consumer_group_lag(kafka.celery_consumer_group(topic), topic)
            except Exception as exc:  # broker restarting: keep holding the sends
                log.warning("persist backlog unknown (%s); holding sends", exc)
                lag = -1
            if lag == 0:
                return
            if time.monotonic() - reported > 5:
                log.warning("holding sends: %d persistence tasks still to store", lag)
                reported = time.monotonic()
            self.stop_event.wait(0.2)
        raise InterruptedError("stopping")

    @staticmethod
    def _stored_duplicates(sends: list[Send]) -> Stored:
        """Sends already stored in MySQL (idempotency that survives Redis)."""
        checks = message_selectors.send_checks(user_ids=set(), pairs=set(),
                                               resends={_key(s) for s in sends})
        return assigned_from_rows(checks.stored)
