"""Messaging reads: history, sync and the conversation list."""

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any

import orjson
from django.db import connection

from accounts.models import Block, User
from groups.models import GroupMember
from messaging import sequences
from messaging.conversations import ConversationRef, group_conversation_id, parse_conversation_id
from messaging.models import Conversation, ConversationState, HiddenMessage, Message, MessageMention, Reaction


def message_to_dict(m: Message) -> dict[str, Any]:
    return {"message_id": str(m.message_id), "conversation_id": m.conversation_id, "seq": m.seq,
            "sender_id": m.sender_id, "kind": m.kind, "body": "" if m.recalled else m.body,
            "extra": {} if m.recalled else m.extra, "client_msg_id": m.client_msg_id, "ts": m.ts,
            "recalled": m.recalled, "edited_at": m.edited_at, "reply_to": m.reply_to, "mentions": m.mentions or []}


def reactions_attach(messages: list[dict[str, Any]], *, user_id: int) -> list[dict[str, Any]]:
    """Set each message object's `reactions` ([{emoji, count, me}], by first use) for the
    caller, in place; returns the list. One query for the whole page, none for an empty
    one. A recalled message shows none (also one a reaction raced its recall onto)."""
    ids = [int(m["message_id"]) for m in messages if not m["recalled"]]
    found: dict[int, list[dict[str, Any]]] = {}
    if ids:
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT message_id, emoji, COUNT(*), MAX(user_id = %s) FROM {Reaction._meta.db_table} "
                f"WHERE message_id IN ({', '.join(['%s'] * len(ids))}) "
                "GROUP BY message_id, emoji ORDER BY MIN(position)",
                [user_id, *ids])
            for message_id, emoji, count, me in cursor.fetchall():
                found.setdefault(int(message_id), []).append({"emoji": emoji, "count": int(count), "me": bool(me)})
    for m in messages:
        m["reactions"] = found.get(int(m["message_id"]), [])
    return messages


def history_floor(*, user_id: int, ref: ConversationRef) -> int:
    """A group member's history starts after the seq at which they joined."""
    if ref.kind != "group" or ref.group_id is None:  # a group ref always has its id
        return 0
    joined = GroupMember.objects.filter(group_id=ref.group_id, user_id=user_id).values_list("joined_seq", flat=True)
    return joined.first() or 0


def conversation_messages(*, user_id: int, ref: ConversationRef, after_seq: int = 0,
                          before_seq: int | None = None, limit: int = 50) -> tuple[list[dict[str, Any]], bool]:
    """Messages ascending by seq, and whether more exist in the paging direction.

    Forward (after_seq) reads MySQL and then the Redis cache of recent messages,
    so a message acked but not yet stored is still returned.
    """
    floor = history_floor(user_id=user_id, ref=ref)
    hidden = set(HiddenMessage.objects.filter(user_id=user_id, conversation_id=ref.conversation_id)
                 .values_list("message_id", flat=True))
    qs = Message.objects.filter(conversation_id=ref.conversation_id, seq__gt=max(after_seq, floor))
    if hidden:
        qs = qs.exclude(message_id__in=hidden)
    if before_seq is not None:
        rows = list(qs.filter(seq__lt=before_seq).order_by("-seq")[: limit + 1])
        has_more = len(rows) > limit
        return reactions_attach([message_to_dict(m) for m in reversed(rows[:limit])], user_id=user_id), has_more
    rows = list(qs.order_by("seq")[: limit + 1])
    found = {m.seq: message_to_dict(m) for m in rows}
    # Fill from the recent cache: rows still queued for persistence.
    for raw in sequences.recent_after(ref.conversation_id, max(after_seq, floor), limit + 1):
        m = orjson.loads(raw)
        if int(m["message_id"]) not in hidden:
            found.setdefault(m["seq"], m)
    ordered = [found[s] for s in sorted(found)]
    return reactions_attach(ordered[:limit], user_id=user_id), len(ordered) > limit


def conversation_list(*, user_id: int) -> list[dict[str, Any]]:
    """The user's conversations with unread counts and last message, most recent first."""
    state_rows = ConversationState.objects.filter(user_id=user_id).values_list(
        "conversation_id", "read_seq", "muted", "pinned_at")
    states = {cid: read_seq for cid, read_seq, _, _ in state_rows}
    prefs = {cid: (muted, pinned_at) for cid, _, muted, pinned_at in state_rows}
    singles = {cid: ref for cid in states if (ref := parse_conversation_id(cid)) and ref.kind == "single"}
    membership_rows = GroupMember.objects.filter(user_id=user_id, group__dissolved=False).values_list(
        "group_id", "joined_seq", "group__name")  # the name rides on the join already made for `dissolved`
    group_rows = {group_conversation_id(gid): (gid, name) for gid, _, name in membership_rows}
    groups = {group_conversation_id(gid): joined for gid, joined, _ in membership_rows}  # the join floors
    ids = list(singles) + list(groups)
    summaries = {c.conversation_id: c for c in Conversation.objects.filter(conversation_id__in=ids)}
    live = sequences.current_seqs(ids)
    last_ids = [c.last_message_id for c in summaries.values() if c.last_message_id]
    last = {m.message_id: m for m in Message.objects.filter(message_id__in=last_ids)}
    hidden = set(HiddenMessage.objects.filter(user_id=user_id, message_id__in=last_ids)
                 .values_list("message_id", flat=True))
    read_seqs = {cid: max(states.get(cid, 0), groups.get(cid, 0)) for cid in ids}
    max_seqs = {cid: max(live.get(cid, 0), summaries[cid].max_seq if cid in summaries else 0) for cid in ids}
    # Only conversations with unread messages can have unread mentions: mostly none, then no query.
    mentions = mentions_unread(user_id=user_id, read_seqs={cid: r for cid, r in read_seqs.items()
                                                           if max_seqs[cid] > r})
    peer_nicknames = _peer_nicknames(singles.values())
    out: list[tuple[bool, int, int, dict[str, Any]]] = []
    for cid in ids:
        summary = summaries.get(cid)
        max_seq = max_seqs[cid]
        floor = groups.get(cid, 0)
        read_seq = read_seqs[cid]
        last_message = last.get(summary.last_message_id) if summary and summary.last_message_id else None
        if last_message is not None and last_message.message_id in hidden:
            last_message = _last_visible(user_id, cid)
        single = singles.get(cid)
        item: dict[str, Any] = {
            "conversation_id": cid, "kind": "single" if single else "group",
            "max_seq": max_seq, "read_seq": read_seq, "unread": max(0, max_seq - read_seq),
            "unread_mentions": mentions.get(cid, 0),
            "last_message": message_to_dict(last_message) if last_message and last_message.seq > floor else None,
        }
        if single:
            item["peer_id"] = single.peer_of(user_id)
            item["peer_nickname"] = peer_nicknames.get(item["peer_id"], "")
        else:
            item["group_id"], item["group_name"] = group_rows[cid]
        muted, pinned_at = prefs.get(cid, (False, None))
        item["muted"], item["pinned"] = muted, pinned_at is not None
        out.append((pinned_at is not None, pinned_at or 0, summary.last_ts if summary else 0, item))
    # Pinned first (most recently pinned on top), then by the last message's time.
    out.sort(key=lambda row: row[:3], reverse=True)
    reactions_attach([row[3]["last_message"] for row in out if row[3]["last_message"]], user_id=user_id)
    return [row[3] for row in out]


def _peer_nicknames(singles: Iterable[ConversationRef]) -> dict[int, str]:
    """user id -> nickname of the caller's 1:1 peers (the caller too: notes-to-self), one
    query; none when there is no 1:1. A blank nickname (users made by commands or the
    admin) shows the username, as registration stores it."""
    ids = {uid for ref in singles for uid in ref.user_ids}
    if not ids:
        return {}
    return {uid: nickname or username for uid, nickname, username
            in User.objects.filter(pk__in=ids).values_list("id", "nickname", "username")}


def _last_visible(user_id: int, conversation_id: str) -> Message | None:
    hidden = HiddenMessage.objects.filter(user_id=user_id, conversation_id=conversation_id).values("message_id")
    return (Message.objects.filter(conversation_id=conversation_id).exclude(message_id__in=hidden)
            .order_by("-seq").first())


def conversation_max_seq(*, conversation_id: str) -> int:
    live = sequences.current_seqs([conversation_id]).get(conversation_id, 0)
    stored = Conversation.objects.filter(conversation_id=conversation_id).values_list("max_seq", flat=True).first()
    return max(live, stored or 0)




# (sender, conversation_id, client_msg_id) -> (message_id, seq, ts, conversation_id)
StoredRows = dict[tuple[int, str, str], tuple[int, int, int, str]]


@dataclass
class SendChecks:
    """What logic must know from MySQL about a batch of sends (see `send_checks`)."""

    active_user_ids: set[int]
    blocks: set[tuple[int, int]]  # (blocker, blocked)
    stored: StoredRows


def send_checks(*, user_ids: set[int], pairs: set[tuple[int, int]],
                resends: set[tuple[int, str, str]]) -> SendChecks:
    """One round trip for logic's per-batch reads: which of user_ids are active, which
    (blocker, blocked) of pairs are blocks, and which (sender, conversation_id, client_msg_id) of resends
    are already stored.

    Logic runs this for every batch it consumes. As three ORM queries it cost 1.5-1.9 ms
    a batch; as one raw UNION ALL, 0.25 ms (measured against the bench database).
    """
    parts: list[str] = []
    params: list[Any] = []

    def placeholders(values: Collection[Any]) -> str:
        params.extend(values)
        return ", ".join(["%s"] * len(values))

    # Every branch yields the same seven columns: kind, a, b, message_id, seq, ts, conversation_id.
    if user_ids:
        parts.append(f"SELECT 'u', id, NULL, NULL, NULL, NULL, NULL FROM {User._meta.db_table} "
                     f"WHERE id IN ({placeholders(user_ids)}) AND is_active")
    if pairs:
        blockers, blocked = {a for a, _ in pairs}, {b for _, b in pairs}
        parts.append(f"SELECT 'b', blocker_id, blocked_id, NULL, NULL, NULL, NULL FROM {Block._meta.db_table} "
                     f"WHERE blocker_id IN ({placeholders(blockers)}) AND blocked_id IN ({placeholders(blocked)})")
    if resends:
        senders, cids, cmids = ({r[i] for r in resends} for i in range(3))
        parts.append(f"SELECT 'm', sender_id, client_msg_id, message_id, seq, ts, conversation_id "
                     f"FROM {Message._meta.db_table} WHERE sender_id IN ({placeholders(senders)}) "
                     f"AND conversation_id IN ({placeholders(cids)}) AND client_msg_id IN ({placeholders(cmids)})")
    checks = SendChecks(set(), set(), {})
    if not parts:
        return checks
    with connection.cursor() as cursor:
        cursor.execute(" UNION ALL ".join(parts), params)
        rows = cursor.fetchall()
    for kind, a, b, message_id, seq, ts, cid in rows:
        if kind == "u":
            checks.active_user_ids.add(int(a))
        elif kind == "b" and (int(a), int(b)) in pairs:
            checks.blocks.add((int(a), int(b)))
        elif kind == "m" and (int(a), str(cid), str(b)) in resends:
            checks.stored[(int(a), str(cid), str(b))] = (int(message_id), int(seq), int(ts), str(cid))
    return checks


# message_id -> (conversation_id, seq, sender_id)
MessagePlaces = dict[int, tuple[str, int, int]]


@dataclass
class ReplyChecks:
    places: MessagePlaces  # message_id -> (conversation_id, seq, sender_id)
    joined: dict[tuple[int, int], int]  # (group_id, user_id) -> joined_seq
    hidden: set[tuple[int, int]]  # (user_id, message_id) deleted for that user


def reply_checks(*, message_ids: set[int], members: set[tuple[int, int]],
                 repliers: set[tuple[int, int]]) -> ReplyChecks:
    """What logic must know to judge a batch's replies, in one MySQL query: where each
    stored message of message_ids is, the joined_seq of each (group_id, user_id) of
    members (a group's history starts there), and which (user_id, message_id) of
    repliers the user deleted for themself. Messages acked but not stored yet are
    looked up in Redis' message index (one MGET), only when MySQL lacks some."""
    parts: list[str] = []
    params: list[Any] = []
    if repliers:
        _union_part(parts, params, f"SELECT 'h', user_id, NULL, NULL, message_id FROM {HiddenMessage._meta.db_table}",
                    ("user_id", "message_id"), repliers)
    if message_ids:
        parts.append(f"SELECT 'm', message_id, conversation_id, seq, sender_id FROM {Message._meta.db_table} "
                     f"WHERE message_id IN ({', '.join(['%s'] * len(message_ids))})")
        params.extend(message_ids)
    if members:
        _union_part(parts, params, f"SELECT 'j', group_id, NULL, joined_seq, user_id FROM {GroupMember._meta.db_table}",
                    ("group_id", "user_id"), members)
    out = ReplyChecks({}, {}, set())
    if parts:
        with connection.cursor() as cursor:
            cursor.execute(" UNION ALL ".join(parts), params)
            rows = cursor.fetchall()
        for kind, a, cid, seq, b in rows:
            if kind == "m":
                out.places[int(a)] = (str(cid), int(seq), int(b))
            elif kind == "h" and (int(a), int(b)) in repliers:
                out.hidden.add((int(a), int(b)))
            elif (int(a), int(b)) in members:
                out.joined[(int(a), int(b))] = int(seq)
    missing = sorted(message_ids - out.places.keys())
    out.places.update(sequences.messages_locate_recent(missing))
    return out


def _union_part(parts: list[str], params: list[Any], select: str, columns: tuple[str, str],
                pairs: set[tuple[int, int]]) -> None:
    """Add `select WHERE a IN (..) AND b IN (..)` over the pairs' values to a UNION: a
    superset of the pairs (the caller keeps only the pairs it asked for), in one range
    scan of the table's (a, b) index."""
    firsts, seconds = {a for a, _ in pairs}, {b for _, b in pairs}
    parts.append(f"{select} WHERE {columns[0]} IN ({', '.join(['%s'] * len(firsts))}) "
                 f"AND {columns[1]} IN ({', '.join(['%s'] * len(seconds))})")
    params.extend([*firsts, *seconds])


def mentions_unread(*, user_id: int, read_seqs: dict[str, int]) -> dict[str, int]:
    """conversation_id -> how many messages above read_seqs[cid] mention user_id: not
    recalled, not hidden by user_id, not sent by them (no such row is written).

    One query whose ranges, (user_id, conversation_id, seq > read_seq) per conversation,
    are ranges of the `message_mentions` index: it reads the unread mentions of the user
    and nothing else (usually none), whatever the size of the conversations. The caller
    passes only conversations with unread messages, and read_seq includes a group's
    join floor (a user who left and rejoined is not counted for what came before)."""
    if not read_seqs:
        return {}
    ranges = " OR ".join(["(mm.conversation_id = %s AND mm.seq > %s)"] * len(read_seqs))
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT mm.conversation_id, COUNT(*) FROM {MessageMention._meta.db_table} mm "
            f"JOIN {Message._meta.db_table} m ON m.message_id = mm.message_id AND NOT m.recalled "
            f"LEFT JOIN {HiddenMessage._meta.db_table} h ON h.user_id = mm.user_id AND h.message_id = mm.message_id "
            f"WHERE mm.user_id = %s AND ({ranges}) AND h.id IS NULL GROUP BY mm.conversation_id",
            [user_id, *(v for item in read_seqs.items() for v in item)])
        return {str(cid): int(n) for cid, n in cursor.fetchall()}
