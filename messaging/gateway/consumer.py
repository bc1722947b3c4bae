"""The WebSocket gateway (`/ws`): authenticates, validates frames and hands sends
to upstream. It never routes messages itself: logic does, and this process's
downstream listener pushes what logic sends back (messaging/gateway/listener.py).

A socket is authorised until the `exp` of the access token that opened it, or of the
last one an `auth` frame brought (docs/protocol.md, sessions on open sockets): one
timer per socket closes it with 4401 then."""

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, TypeVar, cast
from urllib.parse import parse_qs

import orjson
from channels.consumer import get_handler_name
from channels.db import database_sync_to_async as _untyped_database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.db import DatabaseError
from redis.exceptions import RedisError
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.tokens import AccessToken

from accounts.models import User
from fanout import presence
from fanout.downstream import Deliveries, control_produce
from messaging import metrics, protocol, rules, selectors, services
from messaging.gateway import presence_changes, upstream
from messaging.gateway.runtime import RUNTIME, frame_bucket
from messaging.protocol import AppError

log = logging.getLogger(__name__)
access = logging.getLogger("gochat.access")  # one line per socket opened, refused and closed

# What a short outage of Redis or MySQL raises: answered without killing the socket.
BACKING_STORE_ERRORS = (RedisError, DatabaseError)

BAD_FRAMES_BEFORE_CLOSE = 20  # within BAD_FRAME_WINDOW_S
BAD_FRAME_WINDOW_S = 10.0
RATE_LIMITED_BEFORE_CLOSE = 200  # rate-limited frames in a row, counted per bucket



def _token_claims(token: str | None) -> tuple[int, int] | None:
    """(user id, exp in epoch seconds) of a valid, unexpired access token; None otherwise."""
    if not token:
        return None
    try:
        access = AccessToken(token)  # type: ignore[arg-type]  # simplejwt annotates the encoded token as Token
        return int(access["user_id"]), int(access["exp"])
    except (TokenError, KeyError, ValueError, TypeError):
        return None


_P = ParamSpec("_P")
_R = TypeVar("_R")


def database_sync_to_async(fn: Callable[_P, _R]) -> Callable[_P, Coroutine[Any, Any, _R]]:
    """channels' decorator with its signature: channels ships no types, so the wrapped
    functions would otherwise be untyped to every caller."""
    return cast(Callable[_P, Coroutine[Any, Any, _R]], _untyped_database_sync_to_async(fn))


def _token_from_scope(scope: dict[str, Any]) -> str | None:
    query: dict[str, list[str]] = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    if query.get("token"):
        return query["token"][0]
    headers: list[tuple[bytes, bytes]] = scope.get("headers", [])
    for name, value in headers:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and token:
                return token.strip()
    return None


@database_sync_to_async
def _active_user(user_id: int) -> bool | None:
    """True active, False banned, None unknown."""
    row = User.objects.filter(pk=user_id).values_list("is_active", flat=True).first()
    return row


async def _refusal(user_id: int) -> int | None:
    """The close code for a user who may not hold a socket (unknown, banned); None if they may."""
    active = await _active_user(user_id)
    if active is None:
        return protocol.CLOSE_BAD_TOKEN
    return None if active else protocol.CLOSE_BANNED


class ChatConsumer(AsyncWebsocketConsumer):  # type: ignore[misc]  # channels ships no types
    user_id: int
    conn_id: str
    expires_at: float  # epoch seconds: the exp of the token authorising this socket
    _expiry: asyncio.TimerHandle | None  # closes the socket at expires_at; None once expired

    async def connect(self) -> None:
        self.user_id = 0
        self.conn_id = presence.new_connection_id()
        self.expires_at = 0.0
        self._expiry = None
        await self.accept()
        self.opened_at = time.monotonic()
        claims = _token_claims(_token_from_scope(self.scope))
        if claims is None:
            self._log_access("refused", protocol.CLOSE_BAD_TOKEN)
            await self.close(code=protocol.CLOSE_BAD_TOKEN)
            return
        user_id, exp = claims
        try:
            refusal = await _refusal(user_id)
        except BACKING_STORE_ERRORS as exc:  # MySQL is away for a moment: ask the client to come back
            log.warning("connect refused for now, the account cannot be checked: %s", exc)
            self._log_access("refused", protocol.CLOSE_TRY_AGAIN_LATER, user_id)
            await self.close(code=protocol.CLOSE_TRY_AGAIN_LATER)
            return
        if refusal is not None:
            self._log_access("refused", refusal, user_id)
            await self.close(code=refusal)
            return
        self.user_id = user_id
        self.bad_frames: list[float] = []
        self.rate_limited = {"send": 0, "frame": 0}  # rate-limited frames in a row, per bucket
        self.frame_bucket = frame_bucket()
        self._authorise_until(exp)
        await RUNTIME.ensure_started()
        RUNTIME.connections.add(user_id, self)
        metrics.CONNECTIONS.set(RUNTIME.connections.count())
        self._log_access("open", None, user_id)
        try:
            await RUNTIME.presence_write([(user_id, self.conn_id)])
            await self._enforce_connection_limit()
        except BACKING_STORE_ERRORS as exc:
            # Without presence nothing would be pushed here: ask the client to come back.
            log.warning("connect refused for now, presence unavailable: %s", exc)
            await self.close(code=protocol.CLOSE_TRY_AGAIN_LATER)

    async def _enforce_connection_limit(self) -> None:
        """Over GOCHAT_WS_MAX_CONNECTIONS, the user's oldest sockets (on any gateway) close with 4409."""
        conns = await presence.connection_gateways(self.user_id)
        excess = sorted(conns)[: max(0, len(conns) - settings.GOCHAT_WS_MAX_CONNECTIONS)]
        if excess:
            kicks = Deliveries()
            for gateway_id in {conns[c] for c in excess}:
                kicks.kick_connections(gateway_id, protocol.CLOSE_TOO_MANY_CONNECTIONS, [c for c in excess
                                                                                 if conns[c] == gateway_id])
            await asyncio.to_thread(control_produce, kicks)

    async def dispatch(self, message: dict[str, Any]) -> None:
        """Channels' dispatch hops to a thread to close stale DB connections before every
        handler, i.e. for every frame. Our database work already runs through
        database_sync_to_async, which does that itself; skip the hop on the hot path."""
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    def _log_access(self, event: str, code: int | None, user_id: int = 0) -> None:
        client = (self.scope.get("client") or ("-",))[0]
        seconds = time.monotonic() - self.opened_at
        access.info("WS %s /ws user=%s code=%s %.1fs %s conn=%s", event, user_id or "-", code, seconds, client,
                    self.conn_id, extra={"event": f"ws_{event}", "user_id": user_id or None, "code": code,
                                         "duration_s": round(seconds, 1), "client": client, "conn_id": self.conn_id})

    def _authorise_until(self, exp: float) -> None:
        """(Re)arm the one timer that closes this socket with 4401 when its token expires."""
        self.expires_at = exp
        if self._expiry is not None:
            self._expiry.cancel()
        self._expiry = asyncio.get_running_loop().call_later(max(0.0, exp - time.time()), self._expire)

    def _expire(self) -> None:
        """The authorising token ran out: close with 4401, once."""
        if self._expiry is None:
            return
        if time.time() < self.expires_at:  # the loop's monotonic timer ran a hair early
            self._authorise_until(self.expires_at)
            return
        self._expiry.cancel()
        self._expiry = None
        RUNTIME.close_soon(self, protocol.CLOSE_BAD_TOKEN)

    def _expired(self) -> bool:
        """Also true between the expiry and a timer that runs late: nothing is served then."""
        return self._expiry is None or time.time() >= self.expires_at

    async def disconnect(self, code: int) -> None:
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        if not self.user_id:
            return
        self._log_access("close", code, self.user_id)
        RUNTIME.connections.remove(self.user_id, self)
        metrics.CONNECTIONS.set(RUNTIME.connections.count())
        try:
            if await presence.presence_remove(self.user_id, self.conn_id):
                RUNTIME.presence_changes.note(self.user_id, False, int(time.time() * 1000))
        except Exception:
            log.exception("presence cleanup failed; the entry expires with its TTL")

    async def push(self, text: str) -> None:
        """Write one pre-encoded frame (called by the downstream listener)."""
        if self._expired():
            return
        try:
            await self.send(text_data=text)
            metrics.DELIVERED.inc()
        except Exception:  # socket went away between lookup and write
            pass

    async def send_frame(self, frame: dict[str, Any]) -> None:
        await self.send(text_data=orjson.dumps(frame).decode())

    # --- frames -------------------------------------------------------------

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if not self.user_id:
            return
        if self._expired():
            self._expire()
            return
        try:
            frame = protocol.parse_frame(text_data if text_data is not None else bytes_data)
            self._take_token(frame)
            await getattr(self, f"on_{frame['type']}")(frame)
        except AppError as exc:
            metrics.FRAME_ERRORS.labels(exc.code).inc()
            await self.send_frame(exc.frame())
            if exc.code == protocol.RATE_LIMITED:
                if max(self.rate_limited.values()) > RATE_LIMITED_BEFORE_CLOSE:
                    await self.close(code=protocol.CLOSE_RATE_ABUSE)
            elif exc.code in (protocol.INVALID, protocol.TOO_LARGE, protocol.UNKNOWN_TYPE):
                await self._count_bad_frame()
        except BACKING_STORE_ERRORS as exc:
            log.warning("%s frame not served, a backing store is unavailable: %s", frame["type"], exc)
            error = AppError(protocol.UNAVAILABLE, "temporarily unavailable; retry shortly",
                               frame.get("client_msg_id"))
            metrics.FRAME_ERRORS.labels(error.code).inc()
            await self.send_frame(error.frame())

    async def _count_bad_frame(self) -> None:
        now = time.monotonic()
        self.bad_frames = [t for t in self.bad_frames if now - t < BAD_FRAME_WINDOW_S] + [now]
        if len(self.bad_frames) > BAD_FRAMES_BEFORE_CLOSE:
            await self.close(code=protocol.CLOSE_PROTOCOL_ABUSE)

    def _take_token(self, frame: dict[str, Any]) -> None:
        """Sends draw from the user's send bucket, every other frame from this socket's frame
        bucket. Each bucket counts its own refusals in a row, so frames that pass one bucket
        do not hide a flood against the other."""
        if frame["type"] == "send":
            bucket, taken, what = "send", RUNTIME.take_send_token(self.user_id), "sends"
        else:
            bucket, taken, what = "frame", self.frame_bucket.take(), "frames"
        if taken:
            self.rate_limited[bucket] = 0
            return
        self.rate_limited[bucket] += 1
        raise AppError(protocol.RATE_LIMITED, f"too many {what}; slow down", frame.get("client_msg_id"))

    async def on_auth(self, frame: dict[str, Any]) -> None:
        """A fresh access token of this socket's user moves its expiry to the token's `exp`.
        Anything else is `invalid` and leaves the old expiry standing."""
        claims = _token_claims(frame["token"])
        if claims is None or claims[0] != self.user_id:
            raise AppError(protocol.INVALID, "token is not a valid access token of this user")
        if claims[1] < self.expires_at:
            raise AppError(protocol.INVALID, "token expires before the one authorising this socket")
        refusal = await _refusal(self.user_id)
        if self._expired():  # the old token ran out while the account was looked up
            return
        if refusal is not None:  # banned, and the ban's own close has not arrived
            await self.close(code=refusal)
            return
        self._authorise_until(claims[1])
        await self.send_frame({"type": "auth_ok", "expires_at": claims[1] * 1000})

    async def on_send(self, frame: dict[str, Any]) -> None:
        upstream.upstream_send(sender_id=self.user_id, fields=frame, gateway_id=RUNTIME.gateway_id,
                               conn_id=self.conn_id)

    async def on_sync(self, frame: dict[str, Any]) -> None:
        messages, has_more = await _sync(self.user_id, frame["conversation_id"], frame["after_seq"], frame["limit"])
        await self.send_frame({"type": "sync_result", "conversation_id": frame["conversation_id"],
                               "messages": messages, "has_more": has_more})

    async def on_read(self, frame: dict[str, Any]) -> None:
        read_seq = await _read(self.user_id, frame["conversation_id"], frame["seq"])
        upstream.upstream_read(user_id=self.user_id, conversation_id=frame["conversation_id"], seq=read_seq,
                               conn_id=self.conn_id)

    async def on_typing(self, frame: dict[str, Any]) -> None:
        """Relay at most one `typing` per user and conversation every GOCHAT_TYPING_INTERVAL_S;
        extra frames, and typing towards someone who blocked you, are dropped quietly."""
        key = (self.user_id, frame["conversation_id"])
        now = time.monotonic()
        if now - RUNTIME.typing_at.get(key, -1e9) < settings.GOCHAT_TYPING_INTERVAL_S:
            return
        RUNTIME.typing_at[key] = now
        if len(RUNTIME.typing_at) > 100_000:
            RUNTIME.typing_at.clear()
        if await _typing_allowed(self.user_id, frame["conversation_id"]):
            upstream.upstream_typing(user_id=self.user_id, conversation_id=frame["conversation_id"])

    async def on_recall(self, frame: dict[str, Any]) -> None:
        """The sender recalls a message; the `recall` frame reaches every member's devices via logic."""
        await _recall(self.user_id, frame["message_id"])

    async def on_edit(self, frame: dict[str, Any]) -> None:
        """The sender edits a text message; the `edit` frame reaches every member's devices
        (this one included) via logic. No direct answer, as for `recall`."""
        await _edit(self.user_id, frame["message_id"], frame["body"])

    async def on_react(self, frame: dict[str, Any]) -> None:
        """Add or remove a reaction; no direct answer: the `reaction` push reaches every member
        device, this one included (none when nothing changed)."""
        await _react(self.user_id, frame["message_id"], frame["emoji"], frame["op"])

    async def on_ping(self, frame: dict[str, Any]) -> None:
        await RUNTIME.presence_write([(self.user_id, self.conn_id)])
        await self.send_frame({"type": "pong"})

    async def on_presence_subscribe(self, frame: dict[str, Any]) -> None:
        """Watch these users (replacing what this socket watched): one `presence` frame per
        id at once, then one per change (messaging/gateway/presence_changes.py). Interest is
        registered in Redis before the state is read, so a change in between is not missed;
        a change noted before the read began is in the answer already, so for users this
        gateway did not watch before it is dropped when its record arrives late (it would
        repeat the answer's state). Another socket here watching them already may still
        get a change in flight twice."""
        user_ids: list[int] = frame["user_ids"]
        new = RUNTIME.connections.watch(self, user_ids)
        await presence.watchers_register(new, RUNTIME.gateway_id)
        RUNTIME.connections.presence_answered(new, int(time.time() * 1000))
        online = await presence.online_states(user_ids)
        last_seen = await presence_changes.users_last_seen(user_ids)
        for user_id in user_ids:
            await self.send_frame(protocol.presence_frame(user_id, user_id in online, last_seen.get(user_id)))


@database_sync_to_async
def _sync(user_id: int, conversation_id: str, after_seq: int, limit: int) -> tuple[list[dict[str, Any]], bool]:
    ref = services.conversation_check_access(user_id=user_id, conversation_id=conversation_id)
    return selectors.conversation_messages(user_id=user_id, ref=ref, after_seq=after_seq, limit=limit)


@database_sync_to_async
def _read(user_id: int, conversation_id: str, seq: int) -> int:
    services.conversation_check_access(user_id=user_id, conversation_id=conversation_id)
    max_seq = selectors.conversation_max_seq(conversation_id=conversation_id)
    return services.conversation_read(user_id=user_id, conversation_id=conversation_id, seq=seq, max_seq=max_seq)


@database_sync_to_async
def _typing_allowed(user_id: int, conversation_id: str) -> bool:
    ref = services.conversation_check_access(user_id=user_id, conversation_id=conversation_id)
    return rules.typing_allowed(user_id=user_id, ref=ref)


@database_sync_to_async
def _recall(user_id: int, message_id: int) -> None:
    services.message_recall_by_sender(user_id=user_id, message_id=message_id)


@database_sync_to_async
def _edit(user_id: int, message_id: int, body: str) -> None:
    services.message_edit_by_sender(user_id=user_id, message_id=message_id, body=body)


@database_sync_to_async
def _react(user_id: int, message_id: int, emoji: str, op: str) -> None:
    services.reaction_change(user_id=user_id, message_id=message_id, emoji=emoji, op=op)
