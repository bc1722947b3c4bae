"""The WebSocket gateway (`/ws`): authenticates, validates frames and hands sends
to upstream. It never routes messages itself: logic does, and this process's
downstream listener pushes what logic sends back (messaging/gateway/listener.py).

A socket is authorised until the `exp` of the access token that opened it, or of the
last one an `auth` frame brought (PROTOCOL.md v1.1, sessions on open sockets): one
timer per socket closes it with 4401 then."""

import asyncio
import logging
import signal
import sys
import time
from typing import Any
from urllib.parse import parse_qs

import orjson
from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.db import DatabaseError
from redis.exceptions import RedisError
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.tokens import AccessToken

from accounts.models import User
from accounts.services import user_control_group
from fanout import presence
from messaging import metrics, protocol, selectors, services
from messaging.gateway import upstream
from messaging.gateway.listener import DownstreamListener, LocalConnections
from messaging.protocol import FrameError

log = logging.getLogger(__name__)
access = logging.getLogger("gochat.access")  # one line per socket opened, refused and closed

CLOSE_BAD_TOKEN = 4401
CLOSE_BANNED = 4403
CLOSE_PROTOCOL_ABUSE = 4400
CLOSE_RATE_ABUSE = 4429
CLOSE_TOO_MANY_CONNECTIONS = 4409
CLOSE_SERVICE_RESTART = 1012
CLOSE_TRY_AGAIN_LATER = 1013
# What a short outage of Redis or MySQL raises: answered without killing the socket.
BACKING_STORE_ERRORS = (RedisError, DatabaseError)

BAD_FRAMES_BEFORE_CLOSE = 20  # within BAD_FRAME_WINDOW_S
BAD_FRAME_WINDOW_S = 10.0
RATE_LIMITED_BEFORE_CLOSE = 200  # rate-limited frames in a row, counted per bucket
PRESENCE_CHECK_S = 1.0  # how soon presence is written again after Redis lost it
BUCKET_PRUNE_S = 60.0  # how often the send buckets of users gone quiet are dropped


class TokenBucket:
    """`rate` tokens a second, holding at most `burst`; starts full."""

    __slots__ = ("at", "burst", "rate", "tokens")

    def __init__(self, rate: float, burst: float) -> None:
        self.rate, self.burst = rate, burst
        self.tokens, self.at = float(burst), time.monotonic()

    def _refill(self, now: float) -> None:
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now

    def take(self) -> bool:
        self._refill(time.monotonic())
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True

    def full(self, now: float) -> bool:
        """A full bucket is the same as none: it may be dropped without changing any answer."""
        self._refill(now)
        return self.tokens >= self.burst


class GatewayRuntime:
    """Per-process state: local sockets, the downstream listener, the heartbeat."""

    def __init__(self) -> None:
        self.gateway_id = settings.GOCHAT_GATEWAY_ID
        self.connections = LocalConnections()
        self.send_buckets: dict[int, TokenBucket] = {}  # user id -> its sends on this gateway
        self.listener: DownstreamListener | None = None
        self.typing_at: dict[tuple[int, str], float] = {}
        self._background: set[asyncio.Future[Any]] = set()

    async def ensure_started(self) -> None:
        """Start the downstream listener on the first connection, and hold every
        connection until it is positioned, so no socket misses a push meant for it."""
        if self.listener is None:
            loop = asyncio.get_running_loop()
            self.listener = DownstreamListener(self.gateway_id, self.connections, loop)
            self.listener.start()
            self._keep(loop.create_task(self._heartbeat()))
            self._keep(loop.create_task(self._prune_send_buckets()))
            self._install_drain()
        if not self.listener.ready.is_set():
            await asyncio.get_running_loop().run_in_executor(None, self.listener.ready.wait, 30)

    def _keep(self, future: "asyncio.Future[Any]") -> None:
        self._background.add(future)
        future.add_done_callback(self._background.discard)

    def close_soon(self, socket: "ChatConsumer", code: int) -> None:
        """Close a socket from a plain callback (a timer), keeping the task referenced."""
        self._keep(asyncio.ensure_future(socket.close(code=code)))

    async def _heartbeat(self) -> None:
        """Refresh presence every GOCHAT_HEARTBEAT_S, and as soon as Redis answers without
        it (restarted empty, or back from an outage): each PRESENCE_CHECK_S this gateway
        checks for its stats entry, which every refresh writes. Until presence is back,
        logic finds no gateway for these users and skips their pushes."""
        refreshed = time.monotonic()
        failing = False
        while True:
            await asyncio.sleep(PRESENCE_CHECK_S)
            try:
                due = time.monotonic() - refreshed >= settings.GOCHAT_HEARTBEAT_S
                if not due and await presence.gateway_stats_present(self.gateway_id):
                    continue
                await presence.presence_refresh(self.connections.pairs(), self.gateway_id)
                await presence.gateway_stats_write(self.gateway_id, self.connections.count(),
                                                   len(self.connections.by_user))
                refreshed = time.monotonic()
                if failing or not due:
                    log.info("presence of %d connections written again", self.connections.count())
                failing = False
            except Exception:
                if not failing:  # once per outage, not once a second
                    log.exception("presence heartbeat failed; retrying every %.0f s", PRESENCE_CHECK_S)
                failing = True

    def _install_drain(self) -> None:
        """On SIGTERM/SIGINT close every socket with 1012 so clients reconnect elsewhere and sync."""
        if "daphne.server" not in sys.modules:
            return  # uvicorn closes sockets with 1012 on shutdown by itself
        from daphne.ws_protocol import WebSocketProtocol
        from twisted.internet import reactor

        _allow_service_restart_close(WebSocketProtocol)
        previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}

        def drain(signum: int, frame: Any) -> None:
            for socket in list(self.connections.by_conn.values()):
                self._keep(asyncio.ensure_future(socket.close(code=CLOSE_SERVICE_RESTART)))
            handler = previous.get(signum)
            reactor.callLater(0.3, lambda: handler(signum, frame) if callable(handler) else reactor.stop())

        for s in previous:
            signal.signal(s, drain)

    def take_send_token(self, user_id: int) -> bool:
        """Token bucket per user on this gateway: GOCHAT_WS_SEND_RATE/s, bursts of GOCHAT_WS_SEND_BURST.
        Per user, not per socket, so that reconnecting or opening more sockets buys no sends."""
        bucket = self.send_buckets.get(user_id)
        if bucket is None:
            bucket = self.send_buckets[user_id] = TokenBucket(settings.GOCHAT_WS_SEND_RATE,
                                                              settings.GOCHAT_WS_SEND_BURST)
        return bucket.take()

    async def _prune_send_buckets(self) -> None:
        """Keep memory to the users who sent lately: a bucket that has refilled is dropped."""
        while True:
            await asyncio.sleep(BUCKET_PRUNE_S)
            now = time.monotonic()
            self.send_buckets = {uid: b for uid, b in self.send_buckets.items() if not b.full(now)}


RUNTIME = GatewayRuntime()


def _allow_service_restart_close(protocol_class: Any) -> None:
    """Let Daphne send close code 1012 (Service Restart, RFC 6455's registry), which
    PROTOCOL.md promises on shutdown: autobahn's sendClose admits only 1000 and
    3000-4999 from applications, so send that one frame with its lower-level call."""
    original = protocol_class.serverClose
    if getattr(original, "gochat_patched", False):
        return

    def server_close(self: Any, code: int | None = None) -> None:
        if code == CLOSE_SERVICE_RESTART:
            self.sendCloseFrame(code=code)
        else:
            original(self, code)

    server_close.gochat_patched = True  # type: ignore[attr-defined]
    protocol_class.serverClose = server_close


def _frame_bucket() -> TokenBucket:
    """The bucket every frame but `send` draws from: GOCHAT_WS_FRAME_RATE/s, bursts of GOCHAT_WS_FRAME_BURST.
    Per connection, unlike sends: these frames are answered on the socket that sent them,
    so one runaway tab must not starve the user's other devices; the bucket lives and dies
    with its socket (nothing to prune); and a user's sockets are capped at
    GOCHAT_WS_MAX_CONNECTIONS, which bounds what one account gets per gateway."""
    return TokenBucket(settings.GOCHAT_WS_FRAME_RATE, settings.GOCHAT_WS_FRAME_BURST)


def _token_claims(token: str | None) -> tuple[int, int] | None:
    """(user id, exp in epoch seconds) of a valid, unexpired access token; None otherwise."""
    if not token:
        return None
    try:
        access = AccessToken(token)
        return int(access["user_id"]), int(access["exp"])
    except (TokenError, KeyError, ValueError, TypeError):
        return None


def _token_from_scope(scope: dict[str, Any]) -> str | None:
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    if query.get("token"):
        return query["token"][0]
    for name, value in scope.get("headers", []):
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
        return CLOSE_BAD_TOKEN
    return None if active else CLOSE_BANNED


class ChatConsumer(AsyncWebsocketConsumer):
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
            self._log_access("refused", CLOSE_BAD_TOKEN)
            await self.close(code=CLOSE_BAD_TOKEN)
            return
        user_id, exp = claims
        try:
            refusal = await _refusal(user_id)
        except BACKING_STORE_ERRORS as exc:  # MySQL is away for a moment: ask the client to come back
            log.warning("connect refused for now, the account cannot be checked: %s", exc)
            self._log_access("refused", CLOSE_TRY_AGAIN_LATER, user_id)
            await self.close(code=CLOSE_TRY_AGAIN_LATER)
            return
        if refusal is not None:
            self._log_access("refused", refusal, user_id)
            await self.close(code=refusal)
            return
        self.user_id = user_id
        self.bad_frames: list[float] = []
        self.rate_limited = {"send": 0, "frame": 0}  # rate-limited frames in a row, per bucket
        self.frame_bucket = _frame_bucket()
        self._authorise_until(exp)
        await RUNTIME.ensure_started()
        RUNTIME.connections.add(user_id, self)
        metrics.CONNECTIONS.set(RUNTIME.connections.count())
        self._log_access("open", None, user_id)
        try:
            await presence.presence_refresh([(user_id, self.conn_id)], RUNTIME.gateway_id)
            await self.channel_layer.group_add(user_control_group(user_id), self.channel_name)
            await self._enforce_connection_limit()
        except BACKING_STORE_ERRORS as exc:
            # Without presence nothing would be pushed here: ask the client to come back.
            log.warning("connect refused for now, presence unavailable: %s", exc)
            await self.close(code=CLOSE_TRY_AGAIN_LATER)

    async def _enforce_connection_limit(self) -> None:
        """Over GOCHAT_WS_MAX_CONNECTIONS, the user's oldest sockets (on any gateway) close with 4409."""
        conns = await presence.live_connections(self.user_id)
        excess = conns[: max(0, len(conns) - settings.GOCHAT_WS_MAX_CONNECTIONS)]
        if excess:
            await self.channel_layer.group_send(user_control_group(self.user_id), {
                "type": "control.kick", "code": CLOSE_TOO_MANY_CONNECTIONS, "conn_ids": excess})

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
        RUNTIME.close_soon(self, CLOSE_BAD_TOKEN)

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
            await presence.presence_remove(self.user_id, self.conn_id)
            await self.channel_layer.group_discard(user_control_group(self.user_id), self.channel_name)
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

    async def control_kick(self, event: dict[str, Any]) -> None:
        """Channel-layer control message: close this socket (ban; or too many connections,
        naming the ones to close)."""
        targets = event.get("conn_ids")
        if targets is None or self.conn_id in targets:
            await self.close(code=int(event.get("code", CLOSE_BANNED)))

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
        except FrameError as exc:
            metrics.FRAME_ERRORS.labels(exc.code).inc()
            await self.send_frame(exc.frame())
            if exc.code == protocol.RATE_LIMITED:
                if max(self.rate_limited.values()) > RATE_LIMITED_BEFORE_CLOSE:
                    await self.close(code=CLOSE_RATE_ABUSE)
            elif exc.code in (protocol.INVALID, protocol.TOO_LARGE, protocol.UNKNOWN_TYPE):
                await self._count_bad_frame()
        except BACKING_STORE_ERRORS as exc:
            log.warning("%s frame not served, a backing store is unavailable: %s", frame["type"], exc)
            error = FrameError(protocol.UNAVAILABLE, "temporarily unavailable; retry shortly",
                               frame.get("client_msg_id"))
            metrics.FRAME_ERRORS.labels(error.code).inc()
            await self.send_frame(error.frame())

    async def _count_bad_frame(self) -> None:
        now = time.monotonic()
        self.bad_frames = [t for t in self.bad_frames if now - t < BAD_FRAME_WINDOW_S] + [now]
        if len(self.bad_frames) > BAD_FRAMES_BEFORE_CLOSE:
            await self.close(code=CLOSE_PROTOCOL_ABUSE)

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
        raise FrameError(protocol.RATE_LIMITED, f"too many {what}; slow down", frame.get("client_msg_id"))

    async def on_auth(self, frame: dict[str, Any]) -> None:
        """A fresh access token of this socket's user moves its expiry to the token's `exp`.
        Anything else is `invalid` and leaves the old expiry standing."""
        claims = _token_claims(frame["token"])
        if claims is None or claims[0] != self.user_id:
            raise FrameError(protocol.INVALID, "token is not a valid access token of this user")
        if claims[1] < self.expires_at:
            raise FrameError(protocol.INVALID, "token expires before the one authorising this socket")
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

    async def on_ping(self, frame: dict[str, Any]) -> None:
        await presence.presence_refresh([(self.user_id, self.conn_id)], RUNTIME.gateway_id)
        await self.send_frame({"type": "pong"})


@database_sync_to_async
def _sync(user_id: int, conversation_id: str, after_seq: int, limit: int) -> tuple[list[dict[str, Any]], bool]:
    try:
        ref = services.conversation_check_access(user_id=user_id, conversation_id=conversation_id)
    except services.NotAllowed as exc:
        raise FrameError(protocol.NOT_MEMBER, str(exc)) from exc
    return selectors.conversation_messages(user_id=user_id, ref=ref, after_seq=after_seq, limit=limit)


@database_sync_to_async
def _read(user_id: int, conversation_id: str, seq: int) -> int:
    try:
        services.conversation_check_access(user_id=user_id, conversation_id=conversation_id)
    except services.NotAllowed as exc:
        raise FrameError(protocol.NOT_MEMBER, str(exc)) from exc
    max_seq = selectors.conversation_max_seq(conversation_id=conversation_id)
    return services.conversation_read(user_id=user_id, conversation_id=conversation_id, seq=seq, max_seq=max_seq)


@database_sync_to_async
def _typing_allowed(user_id: int, conversation_id: str) -> bool:
    from accounts.selectors import blocked_pairs

    try:
        ref = services.conversation_check_access(user_id=user_id, conversation_id=conversation_id)
    except services.NotAllowed as exc:
        raise FrameError(protocol.NOT_MEMBER, str(exc)) from exc
    if ref.kind == "single":
        peer = ref.peer_of(user_id)
        return peer == user_id or not blocked_pairs(pairs={(peer, user_id)})
    return True


@database_sync_to_async
def _recall(user_id: int, message_id: int) -> None:
    try:
        services.message_recall_by_sender(user_id=user_id, message_id=message_id)
    except services.RecallRefused as exc:
        raise FrameError(protocol.NOT_FOUND if exc.status == 404 else protocol.FORBIDDEN, exc.detail) from exc
