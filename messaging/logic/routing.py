"""Where logic's frames go: the sender's `ack` (ack_frame) or `error`, each accepted
message to its recipients, and the notices (read receipts, typing, recalls, edits, hides), all
collected per gateway in one Deliveries (one Kafka record per gateway per batch) after a
single presence lookup for the batch. Frames of large groups go to the fan-out job."""

from collections import defaultdict
from typing import Any

import orjson

from fanout import presence
from fanout.downstream import Deliveries
from groups import selectors as group_selectors
from messaging.conversations import parse_conversation_id
from messaging.protocol import AppError, EditEvent, HideEvent, Notice, ReadEvent, RecallEvent, SendEvent, TypingEvent
from messaging.rules import Send

Push = tuple[str, list[int], str | None]  # (frame, recipients, connection to skip)


def _frame(obj: dict[str, Any]) -> str:
    return orjson.dumps(obj).decode()


def ack_frame(payload: dict[str, Any]) -> str:
    """The sender's `ack`: the send is accepted and durable (sent only after persistence is)."""
    return _frame({"type": "ack", "client_msg_id": payload["client_msg_id"], "message_id": payload["message_id"],
                   "conversation_id": payload["conversation_id"], "seq": payload["seq"], "ts": payload["ts"]})


def route_refusals(refused: list[tuple[SendEvent, AppError]], deliveries: Deliveries) -> None:
    """An `error` frame to the socket of each refused send (REST sends have none)."""
    for event, error in refused:
        if event.gateway_id and event.conn_id:
            deliveries.to_connection(event.gateway_id, _frame(
                {"type": "error", "code": error.code, "detail": error.detail,
                 "client_msg_id": event.client_msg_id}), event.conn_id)


def route(sends: list[Send], payloads: list[dict[str, Any]], notices: list[Notice],
          deliveries: Deliveries) -> list[tuple[int, str]]:
    """Acks to the sending connections, then every frame to its recipients' gateways
    (one presence lookup for the batch). Returns the frames for large groups, which
    go to one fan-out job."""
    pushes: list[Push] = []
    large: list[tuple[int, str]] = []  # (group id, frame) for the chunked fan-out
    for send, payload in zip(sends, payloads, strict=True):
        if send.event.gateway_id and send.event.conn_id:
            deliveries.to_connection(send.event.gateway_id, ack_frame(payload), send.event.conn_id)
        frame = _frame({"type": "message", "message": payload})
        if send.large_group:
            large.append((send.ref.group_id, frame))  # type: ignore[arg-type]
        else:
            pushes.append((frame, send.recipients, send.event.conn_id))
    _route_notices(notices, pushes, large)
    gateways = presence.gateways_of_users(u for _, users, _ in pushes for u in users)
    for frame, users, skip in pushes:
        _to_users(deliveries, gateways, frame, users, skip)
    return large


def _route_notices(notices: list[Notice], pushes: list[Push], large: list[tuple[int, str]]) -> None:
    """Read receipts (the reader's devices, and the peer in 1:1), recalls and edits (everyone)."""
    refs = [(n, parse_conversation_id(n.conversation_id)) for n in notices]
    routed_groups = {ref.group_id: set[int]() for n, ref in refs if ref is not None and ref.group_id is not None
                     and isinstance(n, RecallEvent | EditEvent | TypingEvent)}
    groups = group_selectors.groups_for_routing(senders=routed_groups)
    for n, ref in refs:
        if ref is None:
            continue
        if isinstance(n, ReadEvent):
            reader = n.user_id
            users = [reader] if ref.kind == "group" else sorted({reader, ref.peer_of(reader)})
            frame = _frame({"type": "read", "conversation_id": ref.conversation_id, "user_id": reader,
                            "seq": n.seq})
            pushes.append((frame, users, n.conn_id))
        elif isinstance(n, TypingEvent):
            # Ephemeral: 1:1 peer, or a small group's other members; never a large group.
            typer = n.user_id
            frame = _frame({"type": "typing", "conversation_id": ref.conversation_id, "user_id": typer})
            if ref.kind == "single":
                pushes.append((frame, [u for u in set(ref.user_ids) if u != typer], None))
            elif (group := groups.get(ref.group_id)) is not None and not group.is_large:  # type: ignore[arg-type]
                pushes.append((frame, [u for u in group.members if u != typer], None))
        elif isinstance(n, HideEvent):
            frame = _frame({"type": "hidden", "conversation_id": ref.conversation_id,
                            "message_id": str(n.message_id)})
            pushes.append((frame, [n.user_id], n.conn_id))
        elif isinstance(n, RecallEvent | EditEvent):
            # Every device of every member, the acting one included; large groups through the fan-out.
            frame = _frame(_change_frame(n))
            if ref.kind == "single":
                pushes.append((frame, sorted(set(ref.user_ids)), None))
            elif (group := groups.get(ref.group_id)) is not None:  # type: ignore[arg-type]
                if group.is_large:
                    large.append((group.group_id, frame))
                else:
                    pushes.append((frame, list(group.members), None))


def _change_frame(n: RecallEvent | EditEvent) -> dict[str, Any]:
    """The push of a change to a stored message."""
    base = {"conversation_id": n.conversation_id, "message_id": str(n.message_id), "seq": n.seq}
    if isinstance(n, RecallEvent):
        return {"type": "recall", **base}
    return {"type": "edit", **base, "body": n.body, "edited_at": n.edited_at}


def _to_users(deliveries: Deliveries, gateways: dict[int, set[str]], frame: str, users: list[int],
              exclude_conn: str | None) -> None:
    by_gateway: dict[str, list[int]] = defaultdict(list)
    for u in users:
        for gw in gateways.get(u, ()):
            by_gateway[gw].append(u)
    for gw, uids in by_gateway.items():
        deliveries.to_users(gw, frame, uids, exclude_conn)
