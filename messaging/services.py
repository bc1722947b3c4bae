"""Messaging writes: persistence of accepted messages, read state."""

import logging
from typing import Any

from django.db import connection, transaction

from messaging.conversations import ConversationRef, parse_conversation_id
from messaging.models import Message

log = logging.getLogger(__name__)


class NotAllowed(Exception):
    """The user may not see or write this conversation."""


def conversation_check_access(*, user_id: int, conversation_id: str) -> ConversationRef:
    """The conversation if user_id may read it; NotAllowed otherwise."""
    from groups.selectors import group_membership

    ref = parse_conversation_id(conversation_id)
    if ref is None:
        raise NotAllowed("malformed conversation id")
    if ref.kind == "single":
        if user_id not in ref.user_ids:
            raise NotAllowed("not a participant")
        return ref
    assert ref.group_id is not None
    if group_membership(group_id=ref.group_id, user_id=user_id) is None:
        raise NotAllowed("not a member")
    return ref


def messages_store(*, messages: list[dict[str, Any]]) -> int:
    """Store a batch of accepted messages in one transaction, idempotently.

    Insert-or-ignore on (conversation_id, seq) and (sender_id, client_msg_id): a
    redelivered batch changes nothing. Returns how many rows were new. A row
    ignored because another message holds its (conversation, seq) is a seq
    conflict: logged, and it must stay 0.
    """
    if not messages:
        return 0
    rows = [Message(message_id=int(m["message_id"]), conversation_id=m["conversation_id"], seq=m["seq"],
                    sender_id=m["sender_id"], kind=m["kind"], body=m["body"], extra=m["extra"],
                    client_msg_id=m["client_msg_id"], ts=m["ts"]) for m in messages]
    with transaction.atomic():
        before = _count_existing([r.message_id for r in rows])
        Message.objects.bulk_create(rows, ignore_conflicts=True)
        _apply_recall_marks([r.message_id for r in rows])
        _conversations_touch(messages)
    inserted = len(rows) - before
    _report_seq_conflicts(rows)
    return inserted


def _count_existing(message_ids: list[int]) -> int:
    return Message.objects.filter(message_id__in=message_ids).count()


def _conversations_touch(messages: list[dict[str, Any]]) -> None:
    """Advance each conversation's max_seq/last message; create 1:1 read states."""
    latest: dict[str, dict[str, Any]] = {}
    participants: set[tuple[int, str]] = set()
    for m in messages:
        cid = m["conversation_id"]
        if cid not in latest or m["seq"] > latest[cid]["seq"]:
            latest[cid] = m
        ref = parse_conversation_id(cid)
        if ref is not None and ref.kind == "single":
            participants.update((uid, cid) for uid in ref.user_ids)
    with connection.cursor() as cursor:
        # MySQL applies the assignments left to right: the last-message columns
        # must compare against the old max_seq, so they come first.
        cursor.executemany(
            "INSERT INTO conversations (conversation_id, max_seq, last_message_id, last_ts) "
            "VALUES (%s, %s, %s, %s) ON DUPLICATE KEY UPDATE "
            "last_message_id = IF(VALUES(max_seq) > max_seq, VALUES(last_message_id), last_message_id), "
            "last_ts = IF(VALUES(max_seq) > max_seq, VALUES(last_ts), last_ts), "
            "max_seq = GREATEST(max_seq, VALUES(max_seq))",
            [(cid, m["seq"], int(m["message_id"]), m["ts"]) for cid, m in latest.items()],
        )
        if participants:
            cursor.executemany(
                "INSERT IGNORE INTO conversation_states (user_id, conversation_id, read_seq) VALUES (%s, %s, 0)",
                sorted(participants),
            )


def _report_seq_conflicts(rows: list[Message]) -> None:
    by_slot = {(r.conversation_id, r.seq): r.message_id for r in rows}
    stored = Message.objects.filter(message_id__in=[r.message_id for r in rows]).values_list("message_id", flat=True)
    missing = [r for r in rows if r.message_id not in set(stored)]
    for r in missing:
        holder = (Message.objects.filter(conversation_id=r.conversation_id, seq=r.seq)
                  .values_list("message_id", flat=True).first())
        if holder is not None and holder != by_slot[(r.conversation_id, r.seq)]:
            # A different message owns this seq: the fenced re-seeding was bypassed.
            log.error("seq conflict", extra={"conversation_id": r.conversation_id, "seq": r.seq,
                                             "message_id": str(r.message_id), "holder": str(holder)})
            from messaging import metrics
            metrics.SEQ_CONFLICTS.inc()


def conversation_read(*, user_id: int, conversation_id: str, seq: int, max_seq: int) -> int:
    """Move the user's read_seq forward to min(seq, max_seq); never backwards. Returns it."""
    target = min(seq, max_seq)
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO conversation_states (user_id, conversation_id, read_seq) VALUES (%s, %s, %s) "
            "ON DUPLICATE KEY UPDATE read_seq = GREATEST(read_seq, VALUES(read_seq))",
            [user_id, conversation_id, target],
        )
        cursor.execute("SELECT read_seq FROM conversation_states WHERE user_id = %s AND conversation_id = %s",
                       [user_id, conversation_id])
        return int(cursor.fetchone()[0])


RECALL_MARK_TTL_S = 7 * 24 * 3600


def message_recall(*, message_id: int, conversation_id: str, seq: int) -> None:
    """Recall a message: it keeps its seq, its body and extra are emptied, history and
    sync say `recalled: true`, and a `recall` frame reaches the conversation's online
    members (routed by logic). Recalling twice is a no-op for the data.

    Safe against racing the message's own persistence: a Redis mark is written
    first, and the persistence task applies marks to the rows it inserts.
    """
    from gochat_project import redis_client
    from messaging import sequences, upstream

    redis_client.client().set(redis_client.key("recalled", message_id), "1", ex=RECALL_MARK_TTL_S)
    Message.objects.filter(message_id=message_id).update(recalled=True, body="", extra={})
    sequences.recent_mark_recalled(conversation_id, seq, message_id)
    upstream.upstream_recall(conversation_id=conversation_id, message_id=message_id, seq=seq)


def _apply_recall_marks(message_ids: list[int]) -> None:
    """Recalls that arrived before these rows were stored."""
    from gochat_project import redis_client

    marks = redis_client.client().mget([redis_client.key("recalled", m) for m in message_ids])
    recalled = [m for m, mark in zip(message_ids, marks, strict=True) if mark]
    if recalled:
        Message.objects.filter(message_id__in=recalled).update(recalled=True, body="", extra={})
