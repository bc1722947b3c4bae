"""Steady load for the fault runs: real WebSocket clients on one asyncio loop that
keep the client contract (docs/protocol.md) through every fault.

- A sender resends every unacked message with the same `client_msg_id` (after a
  timeout, and at once after reconnecting); an `error` frame for a send is counted
  and the send retried, since no fault may turn an accepted send into a rejection.
- Every client reconnects when its socket closes, to its home gateway or the other
  one (jittered backoff), and then `sync`s its conversation from the last seq it
  holds without a gap.
- At the end of a phase every client `sync`s from seq 0: what it then holds is
  compared with what was acked.
"""

import asyncio
import contextlib
import random
import threading
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

import orjson
import websockets

RESEND_AFTER_S = 6.0


@dataclass
class Ack:
    seq: int
    message_id: str
    at: float


@dataclass
class Device:
    """One connected user: sender, recipient, or both."""

    user_id: int
    token: str
    conversation_id: str
    urls: list[str]  # home gateway first
    ws: Any = None
    connected: asyncio.Event = field(default_factory=asyncio.Event)
    reconnects: int = 0
    # what this device holds: message_id -> (seq, client_msg_id, received at)
    held: dict[str, tuple[int, str, float]] = field(default_factory=dict)
    sync_done: asyncio.Event = field(default_factory=asyncio.Event)
    sync_pages: int = 0  # sync_result frames received
    stopped: bool = False

    def contiguous_seq(self) -> int:
        seqs = sorted(s for s, _, _ in self.held.values())
        top = 0
        for s in seqs:
            if s != top + 1:
                break
            top = s
        return top


@dataclass
class Sender:
    device: Device
    pending: dict[str, tuple[str, float]] = field(default_factory=dict)  # cmid -> (body, last sent)
    acks: dict[str, list[Ack]] = field(default_factory=dict)  # cmid -> every distinct ack seen
    sent_at: dict[str, float] = field(default_factory=dict)  # cmid -> first send
    errors: dict[str, int] = field(default_factory=dict)  # error code -> count
    next_n: int = 0


class Load:
    """Pairs of devices on two gateways; `rate` messages a second in total while running."""

    def __init__(self, pairs: list[tuple[tuple[int, str], tuple[int, str], str]], gateway_urls: list[str],
                 rate: float) -> None:
        self.rate = rate
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="chaos-load", daemon=True)
        self.senders: list[Sender] = []
        self.recipients: list[Device] = []
        for i, ((a, ta), (b, tb), cid) in enumerate(pairs):
            # Half the senders and half the recipients live on each gateway.
            home = [gateway_urls[i % 2], gateway_urls[(i + 1) % 2]]
            away = list(reversed(home))
            self.senders.append(Sender(Device(a, ta, cid, home)))
            self.recipients.append(Device(b, tb, cid, away))
        self.phase = ""
        self.sending = False
        self.closes: dict[str, int] = {}  # why sockets ended: close codes, client exceptions
        self.tasks: list[asyncio.Task[Any]] = []

    # --- control from the harness thread -------------------------------------------

    def call(self, coro: Coroutine[Any, Any, Any], timeout: float = 300) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def start(self) -> None:
        self.thread.start()
        self.call(self._start())

    def begin_phase(self, phase: str) -> None:
        self.phase = phase
        self.sending = True

    def end_phase(self, drain_timeout: float = 120) -> bool:
        """Stop new sends; wait until every send is acked. False on timeout."""
        self.sending = False
        deadline = time.monotonic() + drain_timeout
        while any(s.pending for s in self.senders):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.2)
        return True

    def sync_all(self) -> None:
        self.call(self._sync_all(), timeout=300)

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.call(self._stop(), timeout=30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    def devices(self) -> list[Device]:
        return [s.device for s in self.senders] + self.recipients

    def count(self, what: str) -> None:
        self.closes[what] = self.closes.get(what, 0) + 1

    # --- the loop --------------------------------------------------------------------

    async def _start(self) -> None:
        for s in self.senders:
            self.tasks.append(asyncio.create_task(self._keep_connected(s.device, s)))
            self.tasks.append(asyncio.create_task(self._produce(s)))
            self.tasks.append(asyncio.create_task(self._resend(s)))
        for d in self.recipients:
            self.tasks.append(asyncio.create_task(self._keep_connected(d, None)))
        await asyncio.wait_for(asyncio.gather(*(d.connected.wait() for d in self.devices())), 120)

    async def _stop(self) -> None:
        for d in self.devices():
            d.stopped = True
        for t in self.tasks:
            t.cancel()
        for d in self.devices():
            if d.ws is not None:
                with contextlib.suppress(Exception):
                    await d.ws.close()

    async def _keep_connected(self, d: Device, sender: Sender | None) -> None:
        attempt = 0
        while not d.stopped:
            url = d.urls[attempt % len(d.urls)]
            try:
                ws = await websockets.connect(f"{url}?token={d.token}", open_timeout=5, ping_interval=None,
                                              close_timeout=1, compression=None)
            except (OSError, TimeoutError, websockets.InvalidHandshake, websockets.ConnectionClosed):
                attempt += 1
                await asyncio.sleep(min(2.0, 0.1 * attempt) * (0.5 + random.random()))
                continue
            if d.ws is not None:
                d.reconnects += 1
            d.ws = ws
            attempt = 0
            d.connected.set()
            with contextlib.suppress(websockets.ConnectionClosed):
                # Catch up from the last seq held without a gap, then resend what is unacked.
                await self._send_frame(d, {"type": "sync", "conversation_id": d.conversation_id,
                                           "after_seq": d.contiguous_seq(), "limit": 200})
                if sender is not None:
                    for cmid, (body, _) in list(sender.pending.items()):
                        await self._send_one(sender, cmid, body)
            try:
                async for raw in ws:
                    self._on_frame(d, sender, orjson.loads(raw))
            except websockets.ConnectionClosed:
                pass
            except Exception as exc:  # a frame the client cannot read is a finding: count it, reconnect
                self.count(f"client {type(exc).__name__}: {exc}")
            self.count(f"closed {ws.close_code}")
            d.connected.clear()
            await asyncio.sleep(0.1 + random.random() * 0.4)

    async def _send_frame(self, d: Device, frame: dict[str, Any]) -> None:
        await d.ws.send(orjson.dumps(frame).decode())

    def _on_frame(self, d: Device, sender: Sender | None, f: dict[str, Any]) -> None:
        kind = f.get("type")
        now = time.monotonic()
        if kind == "message":
            m = f["message"]
            d.held.setdefault(str(m["message_id"]), (m["seq"], m.get("client_msg_id", ""), now))
        elif kind == "sync_result":
            d.sync_pages += 1
            for m in f.get("messages", []):
                d.held.setdefault(str(m["message_id"]), (m["seq"], m.get("client_msg_id", ""), now))
            if f.get("has_more"):
                # Page on from this page's last seq (not from the highest seq held: a device
                # that got later messages live would skip what it missed in between).
                page_top = max((m["seq"] for m in f.get("messages", [])), default=0)
                asyncio.get_running_loop().create_task(self._sync_more(d, page_top))
            else:
                d.sync_done.set()
        elif sender is not None and kind == "ack":
            cmid = f["client_msg_id"]
            sender.pending.pop(cmid, None)
            acks = sender.acks.setdefault(cmid, [])
            if not any(a.seq == f["seq"] and a.message_id == str(f["message_id"]) for a in acks):
                acks.append(Ack(f["seq"], str(f["message_id"]), now))
        elif sender is not None and kind == "error":
            code = f.get("code", "?")
            sender.errors[code] = sender.errors.get(code, 0) + 1

    async def _sync_more(self, d: Device, after_seq: int) -> None:
        with contextlib.suppress(websockets.ConnectionClosed, AttributeError):
            await self._send_frame(d, {"type": "sync", "conversation_id": d.conversation_id, "after_seq": after_seq,
                                       "limit": 200})

    async def _send_one(self, s: Sender, cmid: str, body: str) -> None:
        s.pending[cmid] = (body, time.monotonic())
        await self._send_frame(s.device, {"type": "send", "conversation_id": s.device.conversation_id,
                                          "client_msg_id": cmid, "body": body})

    async def _produce(self, s: Sender) -> None:
        await asyncio.sleep(random.random() * len(self.senders) / self.rate)
        next_at = time.monotonic()
        while True:
            next_at += len(self.senders) / self.rate  # read each time: the soak may run at another rate
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            if not self.sending:
                next_at = time.monotonic()
                continue
            cmid = f"{self.phase}-{s.device.user_id}-{s.next_n}"
            s.next_n += 1
            body = f"chaos {cmid}"
            s.sent_at[cmid] = time.monotonic()
            s.pending[cmid] = (body, 0.0)
            if s.device.connected.is_set():
                with contextlib.suppress(websockets.ConnectionClosed, AttributeError):
                    await self._send_one(s, cmid, body)

    async def _resend(self, s: Sender) -> None:
        while True:
            await asyncio.sleep(1.0)
            if not s.device.connected.is_set():
                continue
            now = time.monotonic()
            for cmid, (body, last) in list(s.pending.items()):
                if now - last > RESEND_AFTER_S:
                    with contextlib.suppress(websockets.ConnectionClosed, AttributeError):
                        await self._send_one(s, cmid, body)

    async def _sync_all(self) -> None:
        """Every device syncs its conversation from seq 0 (paging) and holds the result.

        A sync is given up and started again only when no page has arrived for 15 s: a
        long conversation (a 30-minute soak holds thousands of messages per pair) takes
        many pages, and restarting on a fixed deadline left earlier page chains running
        beside the new one until the gateways drowned in syncs."""
        async def one(d: Device) -> None:
            for _ in range(100):
                await asyncio.wait_for(d.connected.wait(), 60)
                d.sync_done.clear()
                try:
                    await self._send_frame(d, {"type": "sync", "conversation_id": d.conversation_id,
                                               "after_seq": 0, "limit": 200})
                    pages = -1
                    while not d.sync_done.is_set():
                        if d.sync_pages == pages:
                            raise TimeoutError("no sync page for 15 s")
                        pages = d.sync_pages
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(d.sync_done.wait(), 15)
                    return
                except (websockets.ConnectionClosed, TimeoutError, AttributeError):
                    await asyncio.sleep(0.5)
            raise RuntimeError(f"device {d.user_id} could not sync")

        await asyncio.gather(*(one(d) for d in self.devices()))
