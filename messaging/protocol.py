"""Client frame validation (PROTOCOL.md, WebSocket). Pure functions: a frame in,
a normalised dict out, or a FrameError carrying the protocol's error code."""

import re
from typing import Any

import orjson

from messaging.conversations import parse_conversation_id
from messaging.models import MessageKind

MAX_FRAME_BYTES = 16 * 1024
MAX_BODY_CHARS = 4000
MAX_EXTRA_BYTES = 4096
MAX_SYNC_LIMIT = 200
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


class FrameError(Exception):
    def __init__(self, code: str, detail: str, client_msg_id: str | None = None) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.client_msg_id = client_msg_id

    def frame(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "error", "code": self.code, "detail": self.detail}
        if self.client_msg_id is not None:
            out["client_msg_id"] = self.client_msg_id
        return out


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _conversation(frame: dict[str, Any], cmid: str | None = None) -> str:
    cid = frame.get("conversation_id")
    if parse_conversation_id(cid) is None:
        raise FrameError(INVALID, "conversation_id must be s_{a}_{b} (a <= b) or g_{id}", cmid)
    return cid  # type: ignore[return-value]


def _seq(frame: dict[str, Any], field: str, *, required: bool = True, default: int = 0) -> int:
    value = frame.get(field, None if required else default)
    if not _is_int(value) or not 0 <= value <= MAX_SEQ:  # type: ignore[operator]
        raise FrameError(INVALID, f"{field} must be an integer >= 0")
    return value  # type: ignore[return-value]


def validate_message_fields(data: dict[str, Any]) -> dict[str, Any]:
    """Validate the fields of a send (WebSocket `send` or REST POST /api/messages)."""
    cmid = data.get("client_msg_id")
    if not isinstance(cmid, str) or not CLIENT_MSG_ID.match(cmid):
        raise FrameError(INVALID, "client_msg_id must be 1-64 chars of [A-Za-z0-9_-]")
    cid = _conversation(data, cmid)
    body = data.get("body", "")
    if not isinstance(body, str):
        raise FrameError(INVALID, "body must be a string", cmid)
    if len(body) > MAX_BODY_CHARS:
        raise FrameError(TOO_LARGE, f"body is over {MAX_BODY_CHARS} characters", cmid)
    kind = data.get("kind", "text")
    if not isinstance(kind, str) or kind not in KINDS:  # a list or object is unhashable: check the type first
        raise FrameError(INVALID, f"kind must be one of {', '.join(sorted(KINDS))}", cmid)
    if kind == "text" and not body.strip():
        raise FrameError(INVALID, "a text message needs a non-empty body", cmid)
    extra = data.get("extra", {})
    if extra is None:
        extra = {}
    if not isinstance(extra, dict):
        raise FrameError(INVALID, "extra must be a JSON object", cmid)
    try:
        extra_size = len(orjson.dumps(extra))
    except (TypeError, orjson.JSONEncodeError) as exc:
        raise FrameError(INVALID, "extra is not encodable JSON", cmid) from exc
    if extra_size > MAX_EXTRA_BYTES:
        raise FrameError(TOO_LARGE, f"extra is over {MAX_EXTRA_BYTES} bytes of JSON", cmid)
    if "upload_id" in extra:
        upload_id = extra["upload_id"]
        if not isinstance(upload_id, str) or not UPLOAD_ID.match(upload_id):
            raise FrameError(INVALID, "extra.upload_id must be an upload id (32 hex digits)", cmid)
        if kind not in ATTACHMENT_KINDS:
            raise FrameError(INVALID, "only image and file messages carry an upload_id", cmid)
    return {"client_msg_id": cmid, "conversation_id": cid, "body": body, "kind": kind, "extra": extra}


def parse_frame(raw: str | bytes | None) -> dict[str, Any]:
    """Parse and validate one client frame; returns {type, ...normalised fields}."""
    if raw is None:
        raise FrameError(INVALID, "empty frame")
    size = len(raw.encode() if isinstance(raw, str) else raw)
    if size > MAX_FRAME_BYTES:
        raise FrameError(TOO_LARGE, f"frame is over {MAX_FRAME_BYTES} bytes")
    try:
        frame = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise FrameError(INVALID, "frame is not valid JSON") from exc
    if not isinstance(frame, dict):
        raise FrameError(INVALID, "frame must be a JSON object")
    kind = frame.get("type")
    if kind == "send":
        return {"type": "send", **validate_message_fields(frame)}
    if kind == "sync":
        limit = frame.get("limit", 50)
        if not _is_int(limit) or not 1 <= limit <= MAX_SYNC_LIMIT:
            raise FrameError(INVALID, f"limit must be an integer in 1..{MAX_SYNC_LIMIT}")
        return {"type": "sync", "conversation_id": _conversation(frame),
                "after_seq": _seq(frame, "after_seq", required=False), "limit": limit}
    if kind == "read":
        return {"type": "read", "conversation_id": _conversation(frame), "seq": _seq(frame, "seq")}
    if kind == "ping":
        return {"type": "ping"}
    if kind == "auth":
        token = frame.get("token")
        if not isinstance(token, str) or not token:
            raise FrameError(INVALID, "token must be an access token (a non-empty string)")
        return {"type": "auth", "token": token}
    if kind == "typing":
        return {"type": "typing", "conversation_id": _conversation(frame)}
    if kind == "recall":
        mid = frame.get("message_id")
        if not isinstance(mid, str) or not (mid.isascii() and mid.isdigit()) or len(mid) > 20:
            raise FrameError(INVALID, "message_id must be a message id string")
        return {"type": "recall", "message_id": int(mid)}
    if not isinstance(kind, str):
        raise FrameError(INVALID, "frame needs a string `type`")
    raise FrameError(UNKNOWN_TYPE, f"unknown frame type {kind[:32]!r}")
