"""Who may send what where: the one send, attachment and typing policy. Logic applies it
to every batch it consumes (that is what decides), the REST send view to its one send so a
bot gets a status instead of a 202 for a send logic would refuse, and the gateway to
`typing` and reactions. A blocked user is stopped here and nowhere else (_single_refusal).

Per batch: one MySQL query (senders and peers active, blocks, resends already stored,
`messaging.selectors.send_checks`), one Redis round trip for the groups, and one query
for uploads only when a send names one."""

import uuid
from collections import defaultdict
from dataclasses import dataclass, field

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
            senders_by_group[s.ref.group_id].add(s.event.sender_id)
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
            accepted.append(s)
        else:
            refused.append((s.event, AppError(*problem, s.event.client_msg_id)))
    return accepted, refused, checks.stored


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
    return _single_peer_refusal(user_id, ref) is None


def reaction_refusal(*, user_id: int, ref: ConversationRef) -> AppError | None:
    """Why a participant of ref may not react there: in a 1:1, the send rule (blocked by
    the peer, or the peer not active), so a block silences reaction pushes too; none in
    a group, where a muted member still reacts (a reaction is not a message)."""
    problem = _single_peer_refusal(user_id, ref)
    return AppError(*problem) if problem else None


def _single_peer_refusal(user_id: int, ref: ConversationRef) -> tuple[str, str] | None:
    """The 1:1 send rule towards the peer (one query); None in a group or a self-chat."""
    if ref.kind != "single" or ref.peer_of(user_id) == user_id:
        return None
    peer = ref.peer_of(user_id)
    checks = message_selectors.send_checks(user_ids={user_id, peer}, pairs={(peer, user_id)}, resends=set())
    return _single_refusal(user_id, ref, checks.active_user_ids | {user_id}, checks.blocks)
