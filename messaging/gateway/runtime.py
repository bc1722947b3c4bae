"""The gateway process's state, one per process: its sockets (by user and by
connection), the send rate limits (token buckets), the downstream listener it starts,
the presence heartbeat, and the drain that closes every socket with 1012 on shutdown."""

import asyncio
import logging
import signal
import sys
import time
from collections import defaultdict
from typing import Any, Protocol

from django.conf import settings

from fanout import presence
from messaging import protocol
from messaging.gateway.listener import DownstreamListener
from messaging.gateway.presence_changes import PresenceChanges

log = logging.getLogger(__name__)

PRESENCE_CHECK_S = 1.0  # how soon presence is written again after Redis lost it
# How often each gateway sweeps `online` for users whose presence ran out (their gateway
# crashed): a crash is seen within GOCHAT_PRESENCE_TTL_S + this. One Redis call a second.
PRESENCE_SWEEP_S = 1.0
BUCKET_PRUNE_S = 60.0  # how often the send buckets of users gone quiet are dropped


class Socket(Protocol):
    conn_id: str

    async def push(self, text: str) -> None: ...

    async def close(self, code: int | None = None) -> None: ...


class LocalConnections:
    """The sockets of this gateway process, by user id and by connection id, and which
    of them watch whose presence (`presence_subscribe`)."""

    def __init__(self) -> None:
        self.by_user: dict[int, dict[str, Socket]] = defaultdict(dict)
        self.by_conn: dict[str, Socket] = {}
        self.watching: dict[int, dict[str, Socket]] = {}  # watched user -> subscribed sockets
        self.watched_by: dict[str, list[int]] = {}  # connection -> the users it watches
        self.presence_at: dict[int, int] = {}  # watched user -> `t` (ms) of the last change pushed

    def add(self, user_id: int, socket: Socket) -> None:
        self.by_user[user_id][socket.conn_id] = socket
        self.by_conn[socket.conn_id] = socket

    def remove(self, user_id: int, socket: Socket) -> None:
        self.by_conn.pop(socket.conn_id, None)
        self.unwatch(socket.conn_id)
        conns = self.by_user.get(user_id)
        if conns is not None:
            conns.pop(socket.conn_id, None)
            if not conns:
                del self.by_user[user_id]

    def watch(self, socket: Socket, user_ids: list[int]) -> list[int]:
        """Replace the socket's watched set; returns the users no socket here watched before
        (this gateway must register its interest in them)."""
        self.unwatch(socket.conn_id)
        new = [u for u in user_ids if u not in self.watching]
        for u in user_ids:
            self.watching.setdefault(u, {})[socket.conn_id] = socket
        if user_ids:
            self.watched_by[socket.conn_id] = user_ids
        return new

    def unwatch(self, conn_id: str) -> None:
        """Drop a socket's subscriptions. The gateway's interest in Redis is left to age out
        (the heartbeat stops refreshing it): a change arriving meanwhile reaches nobody here."""
        for u in self.watched_by.pop(conn_id, ()):
            subs = self.watching.get(u)
            if subs is not None:
                subs.pop(conn_id, None)
                if not subs:
                    del self.watching[u]
                    self.presence_at.pop(u, None)

    def presence_targets(self, user_id: int, at_ms: int) -> list[Socket]:
        """The sockets watching user_id, for a change seen at at_ms; none when a later change
        of that user was already pushed (two gateways' records may arrive out of order)."""
        subs = self.watching.get(user_id)
        if not subs or at_ms < self.presence_at.get(user_id, 0):
            return []
        self.presence_at[user_id] = at_ms
        return list(subs.values())

    def presence_answered(self, user_ids: list[int], at_ms: int) -> None:
        """The state of these users is read at at_ms for a subscribe's answer: a change seen
        earlier is in it, and presence_targets drops that change's record."""
        for u in user_ids:
            self.presence_at[u] = max(at_ms, self.presence_at.get(u, 0))

    def pairs(self) -> list[tuple[int, str]]:
        return [(uid, cid) for uid, conns in self.by_user.items() for cid in conns]

    def count(self) -> int:
        return len(self.by_conn)


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
        self.presence_changes = PresenceChanges()
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
            self._keep(loop.create_task(self.presence_changes.run()))
            self._keep(loop.create_task(self._sweep_presence()))
            self._install_drain()
        if not self.listener.ready.is_set():
            await asyncio.get_running_loop().run_in_executor(None, self.listener.ready.wait, 30)

    def _keep(self, future: "asyncio.Future[Any]") -> None:
        self._background.add(future)
        future.add_done_callback(self._background.discard)

    def close_soon(self, socket: Socket, code: int) -> None:
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
                await self.presence_write(self.connections.pairs())
                await presence.watchers_register(self.connections.watching, self.gateway_id)
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

    async def presence_write(self, pairs: list[tuple[int, str]]) -> None:
        """Write or refresh these (user, connection) pairs; the users it brought online
        (a first connect, or back after a sweep) are announced to their watchers."""
        for user_id in await presence.presence_refresh(pairs, self.gateway_id):
            self.presence_changes.note(user_id, True)

    async def _sweep_presence(self) -> None:
        """Announce users whose presence ran out without a disconnect (a crashed gateway).
        Every gateway sweeps; Redis hands each user to one of them. Keyspace notifications
        were the other way: they need `notify-keyspace-events` on the server (often locked
        on managed Redis), one subscription per node of a cluster, and are lost when no
        subscriber listens at that instant; a sweep of the `online` index has none of that."""
        while True:
            await asyncio.sleep(PRESENCE_SWEEP_S)
            try:
                for user_id, last_seen in (await presence.presence_sweep()).items():
                    self.presence_changes.note(user_id, False, last_seen)
            except Exception:
                log.warning("presence sweep failed; retrying in %.0f s", PRESENCE_SWEEP_S, exc_info=True)

    def _install_drain(self) -> None:
        """On SIGTERM/SIGINT close every socket with 1012 so clients reconnect elsewhere and sync
        (Daphne sends 1012 through gochat_project/patches/autobahn_close.py)."""
        if "daphne.server" not in sys.modules:
            return  # uvicorn closes sockets with 1012 on shutdown by itself
        from twisted.internet import reactor as installed_reactor

        # Twisted types the module attribute as its interface, not the installed reactor.
        reactor: Any = installed_reactor

        # Keyed by int: the handler gets the signal number, and Signals is an IntEnum.
        previous: dict[int, Any] = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}

        def drain(signum: int, frame: Any) -> None:
            for socket in list(self.connections.by_conn.values()):
                self._keep(asyncio.ensure_future(socket.close(code=protocol.CLOSE_SERVICE_RESTART)))
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


def frame_bucket() -> TokenBucket:
    """The bucket every frame but `send` draws from: GOCHAT_WS_FRAME_RATE/s, bursts of GOCHAT_WS_FRAME_BURST.
    Per connection, unlike sends: these frames are answered on the socket that sent them,
    so one runaway tab must not starve the user's other devices; the bucket lives and dies
    with its socket (nothing to prune); and a user's sockets are capped at
    GOCHAT_WS_MAX_CONNECTIONS, which bounds what one account gets per gateway."""
    return TokenBucket(settings.GOCHAT_WS_FRAME_RATE, settings.GOCHAT_WS_FRAME_BURST)
