"""The gateway's session expiry and token buckets (messaging/gateway/) at the one place
the live tests cannot reach on purpose: a frame that arrives after the socket's expiry but
before its timer has run. The socket under test records what it would write; the live
stack proves the rest (tests/messaging/test_ws_sessions.py, test_ws_frame_rate.py)."""

import asyncio
import time
from typing import Any

from messaging.gateway import runtime as gateway_runtime
from messaging.gateway.consumer import ChatConsumer
from messaging.gateway.runtime import TokenBucket
from messaging.protocol import CLOSE_BAD_TOKEN


class RecordingConsumer(ChatConsumer):
    """A consumer without a server: what it sends and how it closes are recorded."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[str] = []
        self.closed: list[int] = []

    async def send(self, text_data: str | None = None, bytes_data: bytes | None = None, close: bool = False) -> None:
        assert text_data is not None
        self.sent.append(text_data)

    async def close(self, code: int | bool | None = None, reason: str | None = None) -> None:
        assert isinstance(code, int)
        self.closed.append(code)


def authorised_consumer(expires_in: float) -> RecordingConsumer:
    consumer = RecordingConsumer()
    consumer.user_id = 7
    consumer.conn_id = "c-test"
    consumer.bad_frames = []
    consumer.rate_limited = {"send": 0, "frame": 0}
    consumer.frame_bucket = TokenBucket(20, 100)
    consumer._expiry = None
    consumer._authorise_until(time.time() + expires_in)
    return consumer


async def settle() -> None:
    for _ in range(3):
        await asyncio.sleep(0)


def test_a_frame_after_the_expiry_is_not_served_though_the_timer_has_not_run() -> None:
    async def scenario() -> RecordingConsumer:
        consumer = authorised_consumer(expires_in=0.05)
        time.sleep(0.1)  # past the expiry, and the loop has had no turn to run the timer
        await consumer.receive(text_data='{"type": "ping"}')
        await consumer.push('{"type": "message"}')
        await settle()
        return consumer

    consumer = asyncio.run(scenario())
    assert consumer.sent == []
    assert consumer.closed == [CLOSE_BAD_TOKEN]


def test_the_timer_closes_once_at_the_expiry() -> None:
    async def scenario() -> tuple[RecordingConsumer, list[int]]:
        consumer = authorised_consumer(expires_in=0.2)
        await asyncio.sleep(0.1)
        before = list(consumer.closed)
        await asyncio.sleep(0.3)
        await consumer.receive(text_data='{"type": "ping"}')  # late: refused, no second close
        await settle()
        return consumer, before

    consumer, before = asyncio.run(scenario())
    assert before == []
    assert consumer.closed == [CLOSE_BAD_TOKEN]
    assert consumer.sent == []


def test_a_timer_that_runs_early_is_armed_again() -> None:
    async def scenario() -> RecordingConsumer:
        consumer = authorised_consumer(expires_in=0.3)
        consumer._expire()  # as if the timer ran before the expiry
        await settle()
        assert consumer.closed == [] and consumer._expiry is not None
        await asyncio.sleep(0.4)
        await settle()
        return consumer

    assert asyncio.run(scenario()).closed == [CLOSE_BAD_TOKEN]


def test_disconnect_cancels_the_timer() -> None:
    async def scenario() -> RecordingConsumer:
        consumer = authorised_consumer(expires_in=0.1)
        consumer.user_id = 0  # never registered: disconnect has nothing else to undo
        await consumer.disconnect(1000)
        await asyncio.sleep(0.2)
        await settle()
        return consumer

    assert asyncio.run(scenario()).closed == []


def test_send_buckets_that_refilled_are_pruned_and_the_others_kept(monkeypatch: Any) -> None:
    runtime = gateway_runtime.GatewayRuntime()
    for user_id in (1, 2):
        assert runtime.take_send_token(user_id)
    runtime.send_buckets[2].tokens = 0  # user 2 is still paying off a burst
    runtime.send_buckets[1].at -= 60  # user 1 went quiet a minute ago

    async def one_round() -> None:
        monkeypatch.setattr(gateway_runtime, "BUCKET_PRUNE_S", 0.01)
        task = asyncio.ensure_future(runtime._prune_send_buckets())
        await asyncio.sleep(0.05)
        task.cancel()

    asyncio.run(one_round())
    assert set(runtime.send_buckets) == {2}
