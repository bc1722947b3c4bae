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
    the recipient matches each `message` to its send time by client_msg_id."""

    def __init__(self, pair: Pair, result: WorkerResult, window: int, rate: float | None, base: str) -> None:
        self.pair = pair
        self.result = result
        self.window = window
        self.rate = rate
        self.base = base
        self.sent_at: dict[str, float] = {}
        self.acked = asyncio.Event()
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

    async def read_sender(self, ws: Any) -> None:
        async for raw in ws:
            frame = orjson.loads(raw)
            if frame.get("type") == "ack":
                self.inflight -= 1
                self.result.acked += 1
                self.result.acked_ids.append((frame["conversation_id"], frame.get("seq", 0)))
                self.acked.set()
            elif frame.get("type") == "error":
                self.inflight -= 1
                self.result.errors += 1
                self.acked.set()

    async def read_recipient(self, ws: Any, measure_from: float) -> None:
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
                if sent >= measure_from:
                    self.result.latencies_ms.append((now - sent) * 1000)


async def _pairs_main(url: str, pairs: list[Pair], ready: Event, go: Event, duration: float, window: int,
                      rate_per_sender: float | None, drain_s: float, warmup_s: float) -> WorkerResult:
    result = WorkerResult()
    sem = asyncio.Semaphore(CONNECT_CONCURRENCY)
    base = f"b{random.getrandbits(40):x}"
    runners = [PairRunner(p, result, window, rate_per_sender, base) for p in pairs]
    sockets = await asyncio.gather(*[_connect(url, t, sem) for p in pairs
                                     for t in (p.sender_token, p.recipient_token)])
    result.connect_failures = sum(1 for s in sockets if s is None)
    ready.set()
    while not go.is_set():
        await asyncio.sleep(0.01)
    start = time.monotonic()
    cpu0 = _cpu()
    stop_at = start + warmup_s + duration
    readers = []
    senders = []
    for i, runner in enumerate(runners):
        s_ws, r_ws = sockets[2 * i], sockets[2 * i + 1]
        if s_ws is None or r_ws is None:
            continue
        readers.append(asyncio.create_task(runner.read_sender(s_ws)))
        readers.append(asyncio.create_task(runner.read_recipient(r_ws, start + warmup_s)))
        senders.append(asyncio.create_task(runner.run_sender(s_ws, stop_at)))
    await asyncio.gather(*senders)
    await asyncio.sleep(drain_s)
    result.cpu_s = _cpu() - cpu0
    for task in readers:
        task.cancel()
    await asyncio.gather(*[s.close() for s in sockets if s is not None], return_exceptions=True)
    return result


def pairs_worker(url: str, pairs: list[Pair], ready: Event, go: Event, out: Any, duration: float, window: int,
                 rate_per_sender: float | None, drain_s: float = 5.0, warmup_s: float = 0.0) -> None:
    result = asyncio.run(_pairs_main(url, pairs, ready, go, duration, window, rate_per_sender, drain_s, warmup_s))
    out.put(result)


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

    tasks = [asyncio.create_task(listen(ws)) for ws in live]
    while not stop.is_set():
        await asyncio.sleep(0.05)
    result.cpu_s = _cpu() - cpu0
    for t in tasks:
        t.cancel()
    await asyncio.gather(*[s.close() for s in live], return_exceptions=True)
    return result


def listeners_worker(url: str, tokens: list[str], ready: Event, go: Event, stop: Event, out: Any,
                     count_messages: bool = False) -> None:
    result = asyncio.run(_listeners_main(url, tokens, ready, go, stop, count_messages))
    out.put(result)
