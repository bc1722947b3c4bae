"""Messaging writes: persistence of accepted messages, read state."""

import logging
import time
from typing import Any

import orjson
from django.db import connection, transaction

from messaging import search
from messaging.conversations import ConversationRef, parse_conversation_id
from messaging.models import ConversationState, HiddenMessage, Message, MessageKind, Reaction
from messaging.protocol import FORBIDDEN, INVALID, MAX_REACTION_EMOJI, NOT_FOUND, NOT_MEMBER, UNAVAILABLE, AppError

log = logging.getLogger(__name__)


def conversation_check_access(*, user_id: int, conversation_id: str) -> ConversationRef:
    """The conversation if user_id may read it. AppError otherwise: not_found for an id
    that names no conversation, not_member for one the user is not in."""
    from groups.selectors import group_membership

    ref = parse_conversation_id(conversation_id)
    if ref is None:
        raise AppError(NOT_FOUND, "No such conversation.")
    if ref.kind == "single":
        if user_id not in ref.user_ids:
            raise AppError(NOT_MEMBER, "You are not in this conversation.")
        return ref
    assert ref.group_id is not None
    if group_membership(group_id=ref.group_id, user_id=user_id) is None:
        raise AppError(NOT_MEMBER, "You are not in this conversation.")
    return ref


_INSERT_MESSAGES = (
    "INSERT IGNORE INTO messages (message_id, conversation_id, seq, sender_id, kind, body, extra, client_msg_id, "
    "ts, recalled, reply_to, mentions) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, 0, %s, %s)"
)


def messages_store(*, messages: list[dict[str, Any]]) -> int:
    """Store a batch of accepted messages in one transaction, idempotently.

    Insert-or-ignore on (conversation_id, seq) and (sender_id, client_msg_id): a
    redelivered batch changes nothing. Returns how many rows were new. A row
    ignored because another message holds its (conversation, seq) is a seq
    conflict: logged, and it must stay 0.

    One multi-row INSERT IGNORE (the driver folds executemany into one statement);
    its row count says whether anything was ignored, so the conflict check runs
    only then. The ORM's bulk_create cost the worker more CPU than MySQL did.
    """
    if not messages:
        return 0
    params = [(int(m["message_id"]), m["conversation_id"], m["seq"], m["sender_id"], m["kind"], m["body"],
               orjson.dumps(m["extra"]).decode(), m["client_msg_id"], m["ts"], _json_or_null(m.get("reply_to")),
               _json_or_null(m.get("mentions"))) for m in messages]
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.executemany(_INSERT_MESSAGES, params)
        inserted = max(0, cursor.rowcount)
        search.search_index_add(messages=messages)  # one more multi-row INSERT: the search index
        _mentions_add(messages)
        _apply_late_marks([p[0] for p in params])
        _conversations_touch(messages)
    if inserted < len(params):
        _report_seq_conflicts(messages)
    return inserted


def _json_or_null(value: object) -> str | None:
    """A JSON column's value; None (SQL NULL) for a plain send's absent reply and empty mentions."""
    return orjson.dumps(value).decode() if value else None


def _mentions_add(messages: list[dict[str, Any]]) -> None:
    """The batch's mention rows (MessageMention), one multi-row INSERT IGNORE, and none at
    all when no message mentions anyone. A sender mentioning themself gets no row: their
    own message is never an unread mention."""
    rows = [(int(m["message_id"]), m["conversation_id"], m["seq"], uid) for m in messages
            for uid in m.get("mentions") or () if uid != m["sender_id"]]
    if rows:
        with connection.cursor() as cursor:
            cursor.executemany("INSERT IGNORE INTO message_mentions (message_id, conversation_id, seq, user_id) "
                               "VALUES (%s, %s, %s, %s)", rows)


def _conversations_touch(messages: list[dict[str, Any]]) -> None:
    """Advance each conversation's max_seq/last message; create 1:1 read states.

    A 1:1 conversation's read states are created with its first message (seq 1, stored
    exactly once, in this transaction): inserting them for every batch made MySQL
    reject two duplicate rows per conversation per batch (docs/benchmarks.md).
    """
    latest: dict[str, dict[str, Any]] = {}
    participants: set[tuple[int, str]] = set()
    for m in messages:
        cid = m["conversation_id"]
        if cid not in latest or m["seq"] > latest[cid]["seq"]:
            latest[cid] = m
        if m["seq"] == 1 and (ref := parse_conversation_id(cid)) is not None and ref.kind == "single":
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


def _report_seq_conflicts(messages: list[dict[str, Any]]) -> None:
    """Rows of this batch that are not stored because another message holds their seq:
    each is counted, logged and kept whole in seq_conflicts (its sender was acked)."""
    from messaging import metrics
    from messaging.models import SeqConflict

    ids = [int(m["message_id"]) for m in messages]
    stored = set(Message.objects.filter(message_id__in=ids).values_list("message_id", flat=True))
    for m in messages:
        if int(m["message_id"]) in stored:
            continue  # this very message is stored (a redelivery): not a conflict
        holder = (Message.objects.filter(conversation_id=m["conversation_id"], seq=m["seq"])
                  .values_list("message_id", flat=True).first())
        if holder is not None and holder != int(m["message_id"]):
            # A different message owns this seq: the fenced re-seeding was bypassed.
            _, created = SeqConflict.objects.get_or_create(message_id=int(m["message_id"]), defaults={
                "conversation_id": m["conversation_id"], "seq": m["seq"], "holder_message_id": holder,
                "message": m})
            if created:  # a redelivered batch is not a second conflict
                log.error("seq conflict in %s at seq %d: message %s kept in seq_conflicts, %s holds the seq",
                          m["conversation_id"], m["seq"], m["message_id"], holder, extra={
                              "conversation_id": m["conversation_id"], "seq": m["seq"],
                              "message_id": str(m["message_id"]), "holder": str(holder)})
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
    from gochat_project.infra import redis_client
    from messaging import sequences
    from messaging.gateway import upstream

    redis_client.client().set(redis_client.key("recalled", message_id), "1", ex=RECALL_MARK_TTL_S)
    Message.objects.filter(message_id=message_id).update(recalled=True, body="", extra={})
    Reaction.objects.filter(message_id=message_id).delete()  # a recalled message loses its reactions
    search.search_index_remove(message_ids=[message_id])
    sequences.recent_mark_recalled(conversation_id, seq, message_id)
    upstream.upstream_recall(conversation_id=conversation_id, message_id=message_id, seq=seq)


def _apply_late_marks(message_ids: list[int]) -> None:
    """Edits and recalls that arrived before these rows were stored (one MGET for both).
    Edits first: a message both edited and recalled ends recalled."""
    from gochat_project.infra import redis_client

    n = len(message_ids)
    marks = redis_client.mget([redis_client.key("edited", m) for m in message_ids]
                              + [redis_client.key("recalled", m) for m in message_ids])
    for mid, mark in zip(message_ids, marks[:n], strict=True):
        if mark:
            edit = orjson.loads(mark)
            _edit_store(mid, edit["body"], int(edit["at"]))
    recalled = [m for m, mark in zip(message_ids, marks[n:], strict=True) if mark]
    if recalled:
        Message.objects.filter(message_id__in=recalled).update(recalled=True, body="", extra={})
        search.search_index_remove(message_ids=recalled)


EDIT_MARK_TTL_S = RECALL_MARK_TTL_S  # far longer than any persistence backlog; holds the new body


def _edit_store(message_id: int, body: str, edited_at: int) -> bool:
    """Write an edit to the row and the search index, unless the row is recalled, not text
    (an edit checked before the row was stored, against no cached copy), or holds a
    later edit already (two devices editing at once: the later edit wins everywhere).
    False when no row changed (not stored yet, recalled, or superseded)."""
    from django.db.models import Q

    changed = (Message.objects.filter(message_id=message_id, recalled=False, kind=MessageKind.TEXT)
               .filter(Q(edited_at__isnull=True) | Q(edited_at__lte=edited_at))
               .update(body=body, edited_at=edited_at))
    if changed:
        m = Message.objects.filter(message_id=message_id).values("conversation_id", "seq", "kind", "extra").first()
        if m is not None:
            search.search_index_replace(message_id=message_id, conversation_id=m["conversation_id"], seq=m["seq"],
                                        kind=m["kind"], body=body, extra=m["extra"])
    return bool(changed)


def _own_message_locate(user_id: int, message_id: int, verb: str, window_s: int) -> tuple[str, int]:
    """(conversation_id, seq) of the caller's own message sent less than window_s ago.

    not_found for an unknown id or one in a conversation the caller cannot read (it does
    not exist for them); forbidden for someone else's message or one past the window."""
    from messaging import sequences
    from messaging.snowflake import timestamp_ms

    found = sequences.message_locate(message_id)
    if found is None:
        raise AppError(NOT_FOUND, "No such message.")
    conversation_id, seq, sender_id = found
    if sender_id != user_id:
        try:
            conversation_check_access(user_id=user_id, conversation_id=conversation_id)
        except AppError as exc:  # not in the conversation: the message does not exist for them
            raise AppError(NOT_FOUND, "No such message.") from exc
        raise AppError(FORBIDDEN, f"Only your own messages can be {verb}.")
    if (time.time() * 1000 - timestamp_ms(message_id)) / 1000 > window_s:
        raise AppError(FORBIDDEN, f"Messages can be {verb} within {window_s} s of sending.")
    return conversation_id, seq


def message_recall_by_sender(*, user_id: int, message_id: int) -> None:
    """A sender recalls their own message within GOCHAT_RECALL_WINDOW_S.

    not_found (404) unknown, forbidden (403) someone else's or too late; recalling twice is a no-op. Works
    before the row is stored (the message is found in Redis' index).
    """
    from django.conf import settings

    conversation_id, seq = _own_message_locate(user_id, message_id, "recalled", settings.GOCHAT_RECALL_WINDOW_S)
    if Message.objects.filter(message_id=message_id, recalled=True).exists():
        return
    message_recall(message_id=message_id, conversation_id=conversation_id, seq=seq)


def message_edit_by_sender(*, user_id: int, message_id: int, body: object) -> None:
    """The sender replaces the body of their own text message within GOCHAT_EDIT_WINDOW_S;
    it keeps its seq, and an `edit` frame reaches every member device (routed by logic).

    not_found (404) unknown or not in a conversation the caller can read; forbidden (403)
    someone else's, too late, recalled, not text; invalid (400) an empty or too long body.
    Safe against racing the message's own persistence, as a recall is: the edit is
    marked in Redis first and the persistence task applies marks to the rows it inserts.
    """
    from django.conf import settings

    from gochat_project.infra import redis_client
    from messaging import protocol, sequences
    from messaging.gateway import upstream

    body = protocol.validate_edit_body(body)
    conversation_id, seq = _own_message_locate(user_id, message_id, "edited", settings.GOCHAT_EDIT_WINDOW_S)
    try:  # a sender who left the group: it no longer exists for them, nor do its members see their edits
        conversation_check_access(user_id=user_id, conversation_id=conversation_id)
    except AppError as exc:
        raise AppError(NOT_FOUND, "No such message.") from exc
    now_ms = int(time.time() * 1000)
    kind, recalled = _kind_and_recalled(message_id, conversation_id, seq)
    if recalled:
        raise AppError(FORBIDDEN, "A recalled message cannot be edited.")
    if kind != MessageKind.TEXT:
        raise AppError(FORBIDDEN, "Only text messages can be edited.")
    mark = orjson.dumps({"body": body, "at": now_ms})
    redis_client.client().set(redis_client.key("edited", message_id), mark, ex=EDIT_MARK_TTL_S)
    _edit_store(message_id, body, now_ms)
    sequences.recent_mark_edited(conversation_id, seq, message_id, body, now_ms)
    upstream.upstream_edit(conversation_id=conversation_id, message_id=message_id, seq=seq, body=body,
                           edited_at=now_ms)


def _kind_and_recalled(message_id: int, conversation_id: str, seq: int) -> tuple[str, bool]:
    """A message's kind and whether it is recalled: from its row, or, before the row is
    stored, from the recent cache and the recall mark."""
    from gochat_project.infra import redis_client
    from messaging import sequences

    row = Message.objects.filter(message_id=message_id).values_list("kind", "recalled").first()
    if row is not None:
        return str(row[0]), bool(row[1])
    cached = sequences.recent_cached(conversation_id, seq, message_id) or {}
    recalled = bool(cached.get("recalled")) or redis_client.client().exists(redis_client.key("recalled", message_id))
    return str(cached.get("kind", MessageKind.TEXT)), bool(recalled)


def message_hide(*, user_id: int, message_id: int) -> None:
    """Delete-for-me: hide a message the user can read from their own history on every device."""
    from messaging import sequences
    from messaging.gateway import upstream

    found = sequences.message_locate(message_id)
    if found is None:
        raise AppError(NOT_FOUND, "No such message.")
    conversation_id = found[0]
    try:
        conversation_check_access(user_id=user_id, conversation_id=conversation_id)
    except AppError as exc:
        raise AppError(NOT_FOUND, "No such message.") from exc
    HiddenMessage.objects.get_or_create(user_id=user_id, message_id=message_id,
                                        defaults={"conversation_id": conversation_id})
    upstream.upstream_hide(user_id=user_id, conversation_id=conversation_id, message_id=message_id)


# --- reactions ---------------------------------------------------------------------
# Written here, synchronously, by the REST view's thread or the gateway's
# database_sync_to_async (the socket's event loop never waits on MySQL), as recall is:
# the caller gets its answer (204, or the error of a refused reaction) from the write
# itself, and the unique key (message_id, user_id, emoji) makes a repeat a no-op. Logic
# only routes the push (messaging/logic/routing.py), through the fan-out for large groups.


def _reaction_target(*, user_id: int, message_id: int) -> str:
    """The conversation of a message the user may react to. not_found: unknown, or not
    readable by them (not in the conversation, before their group join, or deleted for
    them), as for delete-for-me; forbidden: recalled; blocked or forbidden: the 1:1
    send rule. Found in Redis' index before its row is stored."""
    from messaging import rules, selectors, sequences

    found = sequences.message_locate(message_id)
    if found is None:
        raise AppError(NOT_FOUND, "No such message.")
    conversation_id, seq, _ = found
    try:
        ref = conversation_check_access(user_id=user_id, conversation_id=conversation_id)
    except AppError as exc:
        raise AppError(NOT_FOUND, "No such message.") from exc
    if seq <= selectors.history_floor(user_id=user_id, ref=ref) or HiddenMessage.objects.filter(
            user_id=user_id, message_id=message_id).exists():  # deleted for them: gone from their view
        raise AppError(NOT_FOUND, "No such message.")
    if (refusal := rules.reaction_refusal(user_id=user_id, ref=ref)) is not None:
        raise refusal
    if _kind_and_recalled(message_id, conversation_id, seq)[1]:  # also before the row is stored
        raise AppError(FORBIDDEN, "A recalled message takes no reactions.")
    return conversation_id


class _MessageLock:
    """A MySQL named lock per message: two first uses of new emoji at once must neither both
    pass the 20-emoji check nor take the same position. Row locks cannot do it: under READ COMMITTED (Django's
    default on MySQL) InnoDB takes no gap locks, and the message row may not exist yet."""

    TIMEOUT_S = 5

    def __init__(self, message_id: int) -> None:
        self.name = f"gochat_react_{message_id}"

    def __enter__(self) -> None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT GET_LOCK(%s, %s)", [self.name, self.TIMEOUT_S])
            if cursor.fetchone()[0] != 1:
                raise AppError(UNAVAILABLE, "Busy; retry shortly.")

    def __exit__(self, *exc: object) -> None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT RELEASE_LOCK(%s)", [self.name])


def reaction_add(*, user_id: int, message_id: int, emoji: str) -> bool:
    """Add the user's emoji to a message they can read; idempotent. Returns whether it is
    new (only then is a `reaction` pushed). invalid: a 21st distinct emoji."""
    from messaging.gateway import upstream

    conversation_id = _reaction_target(user_id=user_id, message_id=message_id)
    with _MessageLock(message_id):
        positions = dict(Reaction.objects.filter(message_id=message_id).values_list("emoji", "position").distinct())
        if emoji not in positions and len(positions) >= MAX_REACTION_EMOJI:
            raise AppError(INVALID, f"A message takes at most {MAX_REACTION_EMOJI} distinct emoji.")
        position = positions.get(emoji, max(positions.values(), default=-1) + 1)
        with connection.cursor() as cursor:
            cursor.execute("INSERT IGNORE INTO message_reactions (message_id, user_id, emoji, position) "
                           "VALUES (%s, %s, %s, %s)", [message_id, user_id, emoji, position])
            added = cursor.rowcount == 1
    if added:
        upstream.upstream_reaction(user_id=user_id, conversation_id=conversation_id, message_id=message_id,
                                   emoji=emoji, op="add")
    return added


def reaction_remove(*, user_id: int, message_id: int, emoji: str) -> bool:
    """Remove the user's emoji from a message; idempotent. Returns whether there was one."""
    from messaging.gateway import upstream

    conversation_id = _reaction_target(user_id=user_id, message_id=message_id)
    removed, _ = Reaction.objects.filter(message_id=message_id, user_id=user_id, emoji=emoji).delete()
    if removed:
        upstream.upstream_reaction(user_id=user_id, conversation_id=conversation_id, message_id=message_id,
                                   emoji=emoji, op="remove")
    return bool(removed)


def reaction_change(*, user_id: int, message_id: int, emoji: str, op: str) -> bool:
    """`op` "add" or "remove" (validated by protocol); whether anything changed."""
    change = reaction_add if op == "add" else reaction_remove
    return change(user_id=user_id, message_id=message_id, emoji=emoji)


def conversation_prefs_update(*, user_id: int, conversation_id: str, muted: bool | None = None,
                              pinned: bool | None = None) -> None:
    state, _ = ConversationState.objects.get_or_create(user_id=user_id, conversation_id=conversation_id)
    if muted is not None:
        state.muted = muted
    if pinned is not None:
        state.pinned_at = int(time.time() * 1000) if pinned else None
    state.save(update_fields=["muted", "pinned_at"])
