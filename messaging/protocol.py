"""The protocol in one place (docs/protocol.md): client frame validation (pure
functions: a frame in, a normalised dict out, or an AppError carrying the protocol's
error code), the error codes with their HTTP statuses, the WebSocket close codes, and
the Kafka records of the upstream topic as typed events (encode/decode)."""

import re
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import orjson

from messaging import conversations
from messaging.conversations import parse_conversation_id
from messaging.models import MessageKind

MAX_FRAME_BYTES = 16 * 1024
MAX_BODY_CHARS = 4000
# orjson refuses to encode past 254 levels, and extra travels inside larger records:
# a frame nested near that limit passed the size check and then failed in the upstream
# encoder, closing the socket 1011. Clients put flat metadata here.
MAX_EXTRA_DEPTH = 16
MAX_EXTRA_BYTES = 4096
MAX_SYNC_LIMIT = 200
MAX_MENTIONS = 50  # user ids a send may mention
MAX_USER_ID = 2**63 - 1  # a BIGINT: larger ids name nobody and would not fit the mention table
MAX_SEQ = 2**53  # what JavaScript clients can hold exactly
CLIENT_MSG_ID = re.compile(r"\A[A-Za-z0-9_-]{1,64}\Z")  # \Z: `$` also matches before a final "\n"
UPLOAD_ID = re.compile(r"\A[0-9a-f]{32}\Z")
ATTACHMENT_KINDS = frozenset({"image", "file"})  # the kinds whose `extra` may carry an upload_id
KINDS = frozenset(MessageKind.values)

# Error codes of the protocol, defined once.
INVALID = "invalid"
NOT_MEMBER = "not_member"
TOO_LARGE = "too_large"
RATE_LIMITED = "rate_limited"
FORBIDDEN = "forbidden"
UNKNOWN_TYPE = "unknown_type"
BLOCKED = "blocked"
NOT_FOUND = "not_found"
BAD_UPLOAD = "bad_upload"
UNAVAILABLE = "unavailable"  # Redis or MySQL is down for a moment: retry the frame shortly

# What each code answers over REST. A WebSocket gets it as an `error` frame instead.
HTTP_STATUS = {INVALID: 400, UNKNOWN_TYPE: 400, BAD_UPLOAD: 400, NOT_MEMBER: 403, FORBIDDEN: 403, BLOCKED: 403,
               NOT_FOUND: 404, TOO_LARGE: 413, RATE_LIMITED: 429, UNAVAILABLE: 503}

# WebSocket close codes, defined once (docs/protocol.md). 1012 and 1013 are RFC 6455's.
CLOSE_BAD_TOKEN = 4401  # missing, invalid or expired token; also when the authorising token runs out
CLOSE_BANNED = 4403
CLOSE_PROTOCOL_ABUSE = 4400
CLOSE_RATE_ABUSE = 4429
CLOSE_TOO_MANY_CONNECTIONS = 4409
CLOSE_SERVICE_RESTART = 1012  # the gateway drains: reconnect elsewhere and sync
CLOSE_TRY_AGAIN_LATER = 1013  # MySQL or Redis away for a moment


class AppError(Exception):
    """The one application error: a protocol error code and a human detail. The gateway
    sends it as an `error` frame (frame()), the REST views answer it with
    {"detail": ...} and HTTP_STATUS[code] (http_status)."""

    def __init__(self, code: str, detail: str, client_msg_id: str | None = None) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.client_msg_id = client_msg_id

    @property
    def http_status(self) -> int:
        return HTTP_STATUS[self.code]

    def frame(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "error", "code": self.code, "detail": self.detail}
        if self.client_msg_id is not None:
            out["client_msg_id"] = self.client_msg_id
        return out


def _nesting_over(value: object, limit: int) -> bool:
    """True if value nests objects/arrays deeper than limit (iterative: no recursion to exhaust)."""
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _conversation(frame: dict[str, Any], cmid: str | None = None) -> str:
    cid = frame.get("conversation_id")
    if parse_conversation_id(cid) is None:
        raise AppError(INVALID, f"conversation_id must be {conversations.GRAMMAR}", cmid)
    return cid  # type: ignore[return-value]


def _seq(frame: dict[str, Any], field: str, *, required: bool = True, default: int = 0) -> int:
    value = frame.get(field, None if required else default)
    if not _is_int(value) or not 0 <= value <= MAX_SEQ:  # type: ignore[operator]
        raise AppError(INVALID, f"{field} must be an integer >= 0")
    return value  # type: ignore[return-value]


def _message_id(value: object, what: str = "message_id", cmid: str | None = None) -> int:
    """A message id sent as a string of digits (ids do not fit JavaScript numbers)."""
    if not isinstance(value, str) or not (value.isascii() and value.isdigit()) or len(value) > 20:
        raise AppError(INVALID, f"{what} must be a message id string", cmid)
    return int(value)


def _mentions(value: object, cmid: str) -> list[int]:
    """At most MAX_MENTIONS user ids; duplicates are dropped (first occurrence kept)."""
    if value is None:
        return []
    if not isinstance(value, list) or not all(_is_int(u) and 0 < u <= MAX_USER_ID for u in value):
        raise AppError(INVALID, "mentions must be a list of user ids", cmid)
    if len(value) > MAX_MENTIONS:
        raise AppError(INVALID, f"at most {MAX_MENTIONS} mentions", cmid)
    return list(dict.fromkeys(value))


def validate_edit_body(body: object) -> str:
    """The new body of an edit: a non-blank string of at most MAX_BODY_CHARS (invalid otherwise)."""
    if not isinstance(body, str) or not body.strip():
        raise AppError(INVALID, "body must be a non-empty string")
    if len(body) > MAX_BODY_CHARS:
        raise AppError(INVALID, f"body is over {MAX_BODY_CHARS} characters")
    return body


def validate_message_fields(data: dict[str, Any]) -> dict[str, Any]:
    """Validate the fields of a send (WebSocket `send` or REST POST /api/messages)."""
    cmid = data.get("client_msg_id")
    if not isinstance(cmid, str) or not CLIENT_MSG_ID.match(cmid):
        raise AppError(INVALID, "client_msg_id must be 1-64 chars of [A-Za-z0-9_-]")
    cid = _conversation(data, cmid)
    body = data.get("body", "")
    if not isinstance(body, str):
        raise AppError(INVALID, "body must be a string", cmid)
    if len(body) > MAX_BODY_CHARS:
        raise AppError(TOO_LARGE, f"body is over {MAX_BODY_CHARS} characters", cmid)
    kind = data.get("kind", "text")
    if not isinstance(kind, str) or kind not in KINDS:  # a list or object is unhashable: check the type first
        raise AppError(INVALID, f"kind must be one of {', '.join(sorted(KINDS))}", cmid)
    if kind == "text" and not body.strip():
        raise AppError(INVALID, "a text message needs a non-empty body", cmid)
    extra = data.get("extra", {})
    if extra is None:
        extra = {}
    if not isinstance(extra, dict):
        raise AppError(INVALID, "extra must be a JSON object", cmid)
    if _nesting_over(extra, MAX_EXTRA_DEPTH):
        raise AppError(INVALID, f"extra is nested deeper than {MAX_EXTRA_DEPTH} levels", cmid)
    try:
        extra_size = len(orjson.dumps(extra))
    except (TypeError, orjson.JSONEncodeError) as exc:
        raise AppError(INVALID, "extra is not encodable JSON", cmid) from exc
    if extra_size > MAX_EXTRA_BYTES:
        raise AppError(TOO_LARGE, f"extra is over {MAX_EXTRA_BYTES} bytes of JSON", cmid)
    if "upload_id" in extra:
        upload_id = extra["upload_id"]
        if not isinstance(upload_id, str) or not UPLOAD_ID.match(upload_id):
            raise AppError(INVALID, "extra.upload_id must be an upload id (32 hex digits)", cmid)
        if kind not in ATTACHMENT_KINDS:
            raise AppError(INVALID, "only image and file messages carry an upload_id", cmid)
    reply_to = data.get("reply_to")
    return {"client_msg_id": cmid, "conversation_id": cid, "body": body, "kind": kind, "extra": extra,
            "reply_to": None if reply_to is None else _message_id(reply_to, "reply_to", cmid),
            "mentions": _mentions(data.get("mentions"), cmid)}


def parse_frame(raw: str | bytes | None) -> dict[str, Any]:
    """Parse and validate one client frame; returns {type, ...normalised fields}."""
    if raw is None:
        raise AppError(INVALID, "empty frame")
    size = len(raw.encode() if isinstance(raw, str) else raw)
    if size > MAX_FRAME_BYTES:
        raise AppError(TOO_LARGE, f"frame is over {MAX_FRAME_BYTES} bytes")
    try:
        frame = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise AppError(INVALID, "frame is not valid JSON") from exc
    if not isinstance(frame, dict):
        raise AppError(INVALID, "frame must be a JSON object")
    kind = frame.get("type")
    if kind == "send":
        return {"type": "send", **validate_message_fields(frame)}
    if kind == "sync":
        limit = frame.get("limit", 50)
        if not _is_int(limit) or not 1 <= limit <= MAX_SYNC_LIMIT:
            raise AppError(INVALID, f"limit must be an integer in 1..{MAX_SYNC_LIMIT}")
        return {"type": "sync", "conversation_id": _conversation(frame),
                "after_seq": _seq(frame, "after_seq", required=False), "limit": limit}
    if kind == "read":
        return {"type": "read", "conversation_id": _conversation(frame), "seq": _seq(frame, "seq")}
    if kind == "ping":
        return {"type": "ping"}
    if kind == "auth":
        token = frame.get("token")
        if not isinstance(token, str) or not token:
            raise AppError(INVALID, "token must be an access token (a non-empty string)")
        return {"type": "auth", "token": token}
    if kind == "typing":
        return {"type": "typing", "conversation_id": _conversation(frame)}
    if kind == "recall":
        return {"type": "recall", "message_id": _message_id(frame.get("message_id"))}
    if kind == "edit":
        return {"type": "edit", "message_id": _message_id(frame.get("message_id")),
                "body": validate_edit_body(frame.get("body"))}
    if not isinstance(kind, str):
        raise AppError(INVALID, "frame needs a string `type`")
    raise AppError(UNKNOWN_TYPE, f"unknown frame type {kind[:32]!r}")


# --- upstream records (gateway -> logic) --------------------------------------------
# The Kafka wire format stays as it was: a JSON object with short keys, "t" the event
# type ("send", "read", "recall", "typing", "hide", "edit"). Records written by the previous
# release must stay readable during a rolling upgrade, so encode_upstream writes the same
# bytes (same keys, same order) and decode_upstream reads them. Code uses these classes.


@dataclass(slots=True)
class SendEvent:
    sender_id: int
    conversation_id: str
    client_msg_id: str
    body: str
    kind: str
    extra: dict[str, Any]
    gateway_id: str | None = None  # where the ack goes; None for REST sends (no socket)
    conn_id: str | None = None
    reply_to: int | None = None  # the message id replied to, as the client named it
    mentions: list[int] = field(default_factory=list)


@dataclass(slots=True)
class ReadEvent:
    user_id: int
    conversation_id: str
    seq: int
    conn_id: str | None = None  # the reading socket: its user's other devices get the receipt


@dataclass(slots=True)
class RecallEvent:
    conversation_id: str
    message_id: int
    seq: int


@dataclass(slots=True)
class EditEvent:
    """An edit already stored: logic pushes it to every member device."""

    conversation_id: str
    message_id: int
    seq: int
    body: str
    edited_at: int


@dataclass(slots=True)
class TypingEvent:
    user_id: int
    conversation_id: str


@dataclass(slots=True)
class HideEvent:
    user_id: int
    conversation_id: str
    message_id: int
    conn_id: str | None = None


UpstreamEvent = SendEvent | ReadEvent | RecallEvent | TypingEvent | HideEvent | EditEvent
Notice = ReadEvent | RecallEvent | TypingEvent | HideEvent | EditEvent  # every event but a send: routed, never stored


def encode_upstream(event: UpstreamEvent) -> bytes:
    """The record value of an event, byte for byte what earlier releases wrote."""
    match event:
        case SendEvent():
            record = {"t": "send", "uid": event.sender_id, "gw": event.gateway_id, "conn": event.conn_id,
                      "cid": event.conversation_id, "client_msg_id": event.client_msg_id,
                      "body": event.body, "kind": event.kind, "extra": event.extra}
            # Only when present: a plain send keeps the previous release's bytes.
            if event.reply_to is not None:
                record["rt"] = str(event.reply_to)
            if event.mentions:
                record["mn"] = event.mentions
            return orjson.dumps(record)
        case ReadEvent():
            return orjson.dumps({"t": "read", "uid": event.user_id, "cid": event.conversation_id, "seq": event.seq,
                                 "conn": event.conn_id})
        case RecallEvent():
            return orjson.dumps({"t": "recall", "cid": event.conversation_id, "mid": str(event.message_id),
                                 "seq": event.seq})
        case TypingEvent():
            return orjson.dumps({"t": "typing", "uid": event.user_id, "cid": event.conversation_id})
        case HideEvent():
            return orjson.dumps({"t": "hide", "uid": event.user_id, "cid": event.conversation_id,
                                 "mid": str(event.message_id)})
        case EditEvent():
            return orjson.dumps({"t": "edit", "cid": event.conversation_id, "mid": str(event.message_id),
                                 "seq": event.seq, "body": event.body, "at": event.edited_at})
    raise TypeError(f"not an upstream event: {event!r}")


def decode_upstream(value: bytes) -> UpstreamEvent | None:
    """The event of a record value; None for an event type this release does not know.
    Raises ValueError (orjson.JSONDecodeError is one) or KeyError on a damaged record.
    A send's conversation id is not checked here: logic refuses a malformed one."""
    e = orjson.loads(value)
    t = e.get("t")
    if t == "send":
        reply_to = e.get("rt")
        return SendEvent(int(e["uid"]), e.get("cid"), e.get("client_msg_id"), e.get("body"), e.get("kind"),
                         e.get("extra"), e.get("gw"), e.get("conn"), None if reply_to is None else int(reply_to),
                         [int(u) for u in e.get("mn") or ()])
    if t == "read":
        return ReadEvent(int(e["uid"]), e.get("cid"), int(e["seq"]), e.get("conn"))
    if t == "recall":
        return RecallEvent(e.get("cid"), int(e["mid"]), int(e["seq"]))
    if t == "typing":
        return TypingEvent(int(e["uid"]), e.get("cid"))
    if t == "hide":
        return HideEvent(int(e["uid"]), e.get("cid"), int(e["mid"]), e.get("conn"))
    if t == "edit":
        return EditEvent(e.get("cid"), int(e["mid"]), int(e["seq"]), str(e["body"]), int(e["at"]))
    return None


# --- downstream records (logic, fan-out -> one gateway) ----------------------------
# One record per gateway per batch: a JSON list of deliveries {"f": frame text, "u": user
# ids, "c": connection ids, "x": connection to skip}. The frame is encoded once, by the
# producer, and written to the sockets as is. A control item {"k": close code, "u"/"c"}
# closes those sockets instead (a ban: 4403 on every gateway; a user over the connection
# cap: 4409 for their oldest sockets). The same short keys as before (in flight during an
# upgrade); code uses the functions below.


def encode_delivery(frame: str, *, user_ids: list[int] | None = None, conn_ids: list[str] | None = None,
                    skip_conn: str | None = None) -> dict[str, Any]:
    """One delivery of a downstream record (orjson encodes the record's list at once)."""
    item: dict[str, Any] = {"f": frame}
    if user_ids is not None:
        item["u"] = user_ids
    if conn_ids is not None:
        item["c"] = conn_ids
    if skip_conn:
        item["x"] = skip_conn
    return item


def encode_close(code: int, *, user_ids: list[int] | None = None,
                 conn_ids: list[str] | None = None) -> dict[str, Any]:
    """A control item: close these users' (or these connections') sockets with `code`."""
    item: dict[str, Any] = {"k": code}
    if user_ids is not None:
        item["u"] = user_ids
    if conn_ids is not None:
        item["c"] = conn_ids
    return item


class Delivery(NamedTuple):
    frame: str | None  # None for a control item
    user_ids: list[int]
    conn_ids: list[str]
    skip_conn: str | None
    close_code: int | None  # a control item: close the targets with it


def decode_deliveries(value: bytes) -> list[Delivery]:
    """Each delivery of a record. Raises ValueError on an undecodable record."""
    return [Delivery(d.get("f"), d.get("u", ()), d.get("c", ()), d.get("x"),
                     int(d["k"]) if "k" in d else None) for d in orjson.loads(value)]
