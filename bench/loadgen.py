"""Load-generator worker processes: real WebSocket clients on asyncio.

Each worker owns whole pairs (sender and recipient in one process) so latency is
recipient receive time - send time on one monotonic clock (CLOCK_MONOTONIC is
system-wide on Linux, which the large-group scenario relies on across processes).
Workers connect at a bounded pace, report ready, and start together on the
parent's signal (BENCHMARKING.md: connect before the clock starts).
"""

import asyncio
import contextlib
import random
import resource
import time
from dataclasses import dataclass, field
from multiprocessing.synchronize import Event
from typing import Any

import orjson
import websockets

from gochat_project.ops.runtime import freeze_startup_objects

CONNECT_CONCURRENCY = 50


@dataclass
class Pair:
    sender_id: int
    sender_token: str
    recipient_id: int
    recipient_token: str
    conversation_id: str


@dataclass
class WorkerResult:
    sent: int = 0
    acked: int = 0
    delivered: int = 0
    errors: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    acked_ids: list[tuple[str, int]] = field(default_factory=list)  # (conversation_id, seq)
    cpu_s: float = 0.0
    connect_failures: int = 0
    receive_times: dict[str, list[float]] = field(default_factory=dict)  # large group: message_id -> times
    window: int = 0  # which measured window of a pairs worker
    send_from: float = 0.0  # the window's measured sending phase (monotonic clock)
    send_until: float = 0.0


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _connect(url: str, token: str, sem: asyncio.Semaphore) -> Any:
    async with sem:
        for attempt in range(5):
            try:
                return await websockets.connect(f"{url}?token={token}" if token else url, max_size=2**22,
                                                open_timeout=30, ping_interval=None, compression=None)
            except (TimeoutError, OSError, websockets.InvalidHandshake):
                await asyncio.sleep(0.2 * (attempt + 1))
        return None


class PairRunner:
    """One pair: the sender sends (closed loop with a window, or at a fixed rate);
    the recipient matches each `message` to its send time by client_msg_id.

    One runner serves several measured windows on the same two sockets: `begin`
    starts a window with a fresh client_msg_id prefix, and frames of an earlier
    window that arrive late are not counted in the new one."""

    def __init__(self, pair: Pair, window: int, rate: float | None) -> None:
        self.pair = pair
        self.window = window
        self.rate = rate
        self.result = WorkerResult()
        self.base = ""
        self.measure_from = 0.0
        self.sent_at: dict[str, float] = {}
        self.acked = asyncio.Event()
        self.inflight = 0

    def begin(self, result: WorkerResult, base: str, measure_from: float) -> None:
        self.result, self.base, self.measure_from = result, base, measure_from
        self.sent_at = {}
        self.inflight = 0

    async def run_sender(self, ws: Any, stop_at: float) -> None:
        n = 0
        if self.rate:
            interval = 1.0 / self.rate
            next_at = time.monotonic() + random.random() * interval  # random phase per sender
            while next_at < stop_at:
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))
                await self._send(ws, n)
                n += 1
                next_at += interval
            return
        while time.monotonic() < stop_at:
            while self.inflight >= self.window:
                self.acked.clear()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self.acked.wait(), timeout=max(0.01, stop_at - time.monotonic()))
                if time.monotonic() >= stop_at:
                    return
            await self._send(ws, n)
            n += 1

    async def _send(self, ws: Any, n: int) -> None:
        cmid = f"{self.base}-{self.pair.sender_id}-{n}"
        self.sent_at[cmid] = time.monotonic()
        self.inflight += 1
        self.result.sent += 1
        await ws.send(orjson.dumps({"type": "send", "client_msg_id": cmid, "body": "bench message body",
                                    "conversation_id": self.pair.conversation_id}).decode())

    def _current(self, frame: dict[str, Any]) -> bool:
        return str(frame.get("client_msg_id", "")).startswith(self.base + "-")

    async def read_sender(self, ws: Any) -> None:
        async for raw in ws:
            frame = orjson.loads(raw)
            if frame.get("type") not in ("ack", "error") or not self._current(frame):
                continue
            self.inflight -= 1
            if frame["type"] == "ack":
                self.result.acked += 1
                self.result.acked_ids.append((frame["conversation_id"], frame.get("seq", 0)))
            else:
                self.result.errors += 1
            self.acked.set()

    async def read_recipient(self, ws: Any) -> None:
        seen: set[str] = set()
        async for raw in ws:
            now = time.monotonic()
            frame = orjson.loads(raw)
            if frame.get("type") != "message":
                continue
            msg = frame["message"]
            if msg["message_id"] in seen:
                continue
            seen.add(msg["message_id"])
            sent = self.sent_at.get(msg["client_msg_id"])
            if sent is not None:
                self.result.delivered += 1
                if sent >= self.measure_from:
                    self.result.latencies_ms.append((now - sent) * 1000)


async def _pairs_main(url: str, pairs: list[Pair], ready: Event, go: Event, out: Any, duration: float,
                      window: int, rate_per_sender: float | None, drain_s: float, warmup_s: float,
                      windows: int) -> None:
    """Connect every pair once, then run `windows` measured windows back to back on those
    sockets, each followed by `drain_s` for late deliveries; one WorkerResult per window."""
    sem = asyncio.Semaphore(CONNECT_CONCURRENCY)
    runners = [PairRunner(p, window, rate_per_sender) for p in pairs]
    sockets = await asyncio.gather(*[_connect(url, t, sem) for p in pairs
                                     for t in (p.sender_token, p.recipient_token)])
    failures = sum(1 for s in sockets if s is None)
    live = [(r, sockets[2 * i], sockets[2 * i + 1]) for i, r in enumerate(runners)
            if sockets[2 * i] is not None and sockets[2 * i + 1] is not None]
    # The clients' own full collections would stall their receive loops and show as
    # server latency: keep the connected sockets out of the collector's sight.
    freeze_startup_objects()
    ready.set()
    while not go.is_set():
        await asyncio.sleep(0.01)
    readers = [asyncio.create_task(reader) for r, s_ws, r_ws in live
               for reader in (r.read_sender(s_ws), r.read_recipient(r_ws))]
    for n in range(windows):
        result = WorkerResult(connect_failures=failures, window=n)
        base = f"b{random.getrandbits(40):x}"
        start = time.monotonic()
        cpu0 = _cpu()
        # Only the first window warms up (new conversations' first messages, consumer joins).
        warm = warmup_s if n == 0 else 0.0
        result.send_from, result.send_until = start + warm, start + warm + duration
        for r, _, _ in live:
            r.begin(result, base, start + warm)
        await asyncio.gather(*[r.run_sender(s_ws, start + warm + duration) for r, s_ws, _ in live])
        await asyncio.sleep(drain_s)
        result.cpu_s = _cpu() - cpu0
        out.put(result)
    for task in readers:
        task.cancel()
    await asyncio.gather(*[s.close() for s in sockets if s is not None], return_exceptions=True)


def pairs_worker(url: str, pairs: list[Pair], ready: Event, go: Event, out: Any, duration: float, window: int,
                 rate_per_sender: float | None, drain_s: float = 5.0, warmup_s: float = 0.0,
                 windows: int = 1) -> None:
    asyncio.run(_pairs_main(url, pairs, ready, go, out, duration, window, rate_per_sender, drain_s, warmup_s,
                            windows))


# --- idle connections and large-group receivers -----------------------------------

async def _listeners_main(url: str, tokens: list[str], ready: Event, go: Event, stop: Event,
                          count_messages: bool) -> WorkerResult:
    result = WorkerResult()
    sem = asyncio.Semaphore(CONNECT_CONCURRENCY)
    cpu0 = _cpu()
    sockets = await asyncio.gather(*[_connect(url, t, sem) for t in tokens])
    result.connect_failures = sum(1 for s in sockets if s is None)
    live = [s for s in sockets if s is not None]
    ready.set()

    async def listen(ws: Any) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            async for raw in ws:
                now = time.monotonic()
                if count_messages:
                    frame = orjson.loads(raw)
                    if frame.get("type") == "message":
                        result.receive_times.setdefault(frame["message"]["message_id"], []).append(now)
                    elif frame.get("type") == "reaction":
                        result.receive_times.setdefault(reaction_key(frame["message_id"]), []).append(now)

    tasks = [asyncio.create_task(listen(ws)) for ws in live]
    while not stop.is_set():
        await asyncio.sleep(0.05)
    result.cpu_s = _cpu() - cpu0
    for t in tasks:
        t.cancel()
    await asyncio.gather(*[s.close() for s in live], return_exceptions=True)
    return result


def reaction_key(message_id: str) -> str:
    """receive_times' key for the `reaction` pushes on a message (its `message` pushes: the id)."""
    return f"reaction:{message_id}"


def listeners_worker(url: str, tokens: list[str], ready: Event, go: Event, stop: Event, out: Any,
                     count_messages: bool = False) -> None:
    result = asyncio.run(_listeners_main(url, tokens, ready, go, stop, count_messages))
    out.put(result)
