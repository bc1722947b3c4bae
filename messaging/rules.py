"""Who may send what where: the one send, attachment and typing policy. Logic applies it
to every batch it consumes (that is what decides), the REST send view to its one send so a
bot gets a status instead of a 202 for a send logic would refuse, and the gateway to
`typing`. A blocked user is stopped here and nowhere else (_single_refusal).

Per batch: one MySQL query (senders and peers active, blocks, resends already stored,
`messaging.selectors.send_checks`), one Redis round trip for the groups, one query for
uploads only when a send names one, and one query (plus, for targets not stored yet,
one MGET) for replies only when a send has `reply_to`. Mentions are checked against
what is already read: the 1:1's two users, the group's members (a large group's are
asked for in the same Redis round trip as its senders)."""

import uuid
from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from groups import selectors as group_selectors
from groups.selectors import RoutingGroup
from messaging import protocol
from messaging import selectors as message_selectors
from messaging.conversations import ConversationRef, parse_conversation_id
from messaging.protocol import AppError, SendEvent
from messaging.selectors import StoredRows
from uploads import selectors as upload_selectors


@dataclass(slots=True)
class Send:
    """A send under judgement; once accepted, who gets it."""

    event: SendEvent
    ref: ConversationRef
    recipients: list[int] = field(default_factory=list)
    large_group: bool = False
    upload_id: uuid.UUID | None = None  # the attachment, once checked
    reply_to: dict[str, Any] | None = None  # {message_id, seq, sender_id} of the message replied to, once checked


Refusal = tuple[SendEvent, AppError]


def sends_authorize(events: list[SendEvent]) -> tuple[list[Send], list[Refusal], StoredRows]:
    """Accepted sends (with their recipients), refusals, and the sends already stored in
    MySQL (read in the same query, for seq assignment)."""
    sends: list[Send] = []
    refused: list[Refusal] = []
    for e in events:
        ref = parse_conversation_id(e.conversation_id)
        if ref is None:
            refused.append((e, AppError(protocol.INVALID, "malformed conversation_id", e.client_msg_id)))
        else:
            sends.append(Send(e, ref))
    checks = message_selectors.send_checks(
        user_ids={s.event.sender_id for s in sends} | {u for s in sends for u in s.ref.user_ids},
        pairs={(s.ref.peer_of(s.event.sender_id), s.event.sender_id) for s in sends
               if s.ref.kind == "single" and s.event.sender_id in s.ref.user_ids},
        resends={(s.event.sender_id, s.ref.conversation_id, s.event.client_msg_id) for s in sends})
    senders_by_group: dict[int, set[int]] = defaultdict(set)
    for s in sends:
        if s.ref.group_id is not None:
            # The mentioned are asked for too: a large group's answer holds only the asked ids.
            senders_by_group[s.ref.group_id].update([s.event.sender_id, *s.event.mentions])
    groups = group_selectors.groups_for_routing(senders=senders_by_group)
    accepted: list[Send] = []
    for s in sends:
        sender = s.event.sender_id
        if sender not in checks.active_user_ids:
            problem: tuple[str, str] | None = (protocol.FORBIDDEN, "your account is not active")
        elif s.ref.kind == "single":
            problem = _single_refusal(sender, s.ref, checks.active_user_ids, checks.blocks)
            s.recipients = sorted(set(s.ref.user_ids))
        else:
            group = groups.get(s.ref.group_id)  # type: ignore[arg-type]
            problem = _group_refusal(sender, group)
            if group is not None:
                s.large_group = group.is_large
                s.recipients = [] if group.is_large else list(group.members)
        if problem is None:
            problem = _mentions_refusal(s, groups)
        if problem is None:
            accepted.append(s)
        else:
            refused.append((s.event, AppError(*problem, s.event.client_msg_id)))
    accepted, bad_replies = _replies_check(accepted)
    return accepted, refused + bad_replies, checks.stored


def _mentions_refusal(send: Send, groups: dict[int, RoutingGroup]) -> tuple[str, str] | None:
    """Every mentioned user must be a participant of the conversation (no query: the
    1:1's users, or the group's members already read for routing)."""
    if not send.event.mentions:
        return None
    if send.ref.kind == "single":
        participants: Collection[int] = send.ref.user_ids
    else:
        group = groups.get(send.ref.group_id)  # type: ignore[arg-type]
        participants = group.members if group is not None else ()
    strangers = [u for u in send.event.mentions if u not in participants]
    if strangers:
        return protocol.INVALID, f"mentions must name participants of the conversation (not {strangers[:5]})"
    return None


def _replies_check(sends: list[Send]) -> tuple[list[Send], list[Refusal]]:
    """A reply must name a message of the same conversation that its sender can read (in
    a group, one sent after the sender joined; not one they deleted for themself, which
    their history no longer shows); a recalled one is fine. Otherwise not_found, the
    same answer as for an unknown id. One query per batch, none when no send replies
    (the hot path)."""
    replying = [s for s in sends if s.event.reply_to is not None]
    if not replying:
        return sends, []
    checks = message_selectors.reply_checks(
        message_ids={s.event.reply_to for s in replying if s.event.reply_to is not None},
        members={(s.ref.group_id, s.event.sender_id) for s in replying if s.ref.group_id is not None},
        repliers={(s.event.sender_id, s.event.reply_to) for s in replying if s.event.reply_to is not None})
    accepted: list[Send] = []
    refused: list[Refusal] = []
    for s in sends:
        target = s.event.reply_to
        if target is None:
            accepted.append(s)
            continue
        place = checks.places.get(target)
        floor = checks.joined.get((s.ref.group_id, s.event.sender_id), 0) if s.ref.group_id is not None else 0
        if (place is None or place[0] != s.ref.conversation_id or place[1] <= floor
                or (s.event.sender_id, target) in checks.hidden):
            refused.append((s.event, AppError(protocol.NOT_FOUND, "reply_to names no message you can read here",
                                              s.event.client_msg_id)))
            continue
        s.reply_to = {"message_id": str(target), "seq": place[1], "sender_id": place[2]}
        accepted.append(s)
    return accepted, refused


def _single_refusal(sender: int, ref: ConversationRef, active: set[int],
                    blocks: set[tuple[int, int]]) -> tuple[str, str] | None:
    """Why sender may not write to this 1:1 conversation (code, detail); None if they may."""
    if sender not in ref.user_ids:
        return protocol.NOT_MEMBER, "not a participant of this conversation"
    if not set(ref.user_ids) <= active:
        return protocol.FORBIDDEN, "the other user is not active"
    if (ref.peer_of(sender), sender) in blocks:
        return protocol.BLOCKED, "you cannot message this user"
    return None


def _group_refusal(sender: int, group: RoutingGroup | None) -> tuple[str, str] | None:
    member = group.members.get(sender) if group else None
    if group is None or member is None:
        return protocol.NOT_MEMBER, "not a member of this group"
    if member.muted:
        return protocol.FORBIDDEN, "you are muted in this group"
    return None


def uploads_check(sends: list[Send]) -> tuple[list[Send], list[Refusal]]:
    """A send naming an upload_id must name an upload of its sender's, of a type its kind
    allows (one query per batch; none when no send names one). The upload's own facts
    then replace whatever the client wrote under those keys of `extra`."""
    named = {s.event.extra["upload_id"] for s in sends if "upload_id" in (s.event.extra or {})}
    if not named:
        return sends, []
    found = upload_selectors.uploads_by_id(upload_ids=named)
    accepted: list[Send] = []
    refused: list[Refusal] = []
    for s in sends:
        upload_id = (s.event.extra or {}).get("upload_id")
        if upload_id is None:
            accepted.append(s)
            continue
        upload = found.get(upload_id)
        problem = upload_selectors.upload_send_refusal(upload, sender_id=s.event.sender_id, kind=s.event.kind)
        if problem is not None or upload is None:
            refused.append((s.event, AppError(protocol.BAD_UPLOAD, problem or "", s.event.client_msg_id)))
            continue
        s.event.extra = {**s.event.extra, **upload_selectors.upload_public(upload)}
        s.upload_id = upload.id
        accepted.append(s)
    return accepted, refused


def send_refusal(event: SendEvent) -> AppError | None:
    """The whole policy for one send, as logic will apply it (the REST send view)."""
    accepted, refused, _ = sends_authorize([event])
    if refused:
        return refused[0][1]
    _, refused = uploads_check(accepted)
    return refused[0][1] if refused else None


def typing_allowed(*, user_id: int, ref: ConversationRef) -> bool:
    """Whether `typing` from a participant of ref is relayed: not towards someone who
    blocked them or is not active (the 1:1 send rule); always within a group."""
    if ref.kind != "single" or ref.peer_of(user_id) == user_id:
        return True
    peer = ref.peer_of(user_id)
    checks = message_selectors.send_checks(user_ids={user_id, peer}, pairs={(peer, user_id)}, resends=set())
    return _single_refusal(user_id, ref, checks.active_user_ids | {user_id}, checks.blocks) is None
