"""The rate limit on frames other than `send` (docs/protocol.md, rate limit): a token
bucket per connection, GOCHAT_WS_FRAME_RATE/s (20) in bursts of GOCHAT_WS_FRAME_BURST
(100). A flood is answered `rate_limited` and then closed with 4429; a person's pace,
a reconnect's catch-up burst included, never meets it. Live stack."""

import time
import uuid

import pytest
from websockets.exceptions import ConnectionClosed

from tests.client import register, single_cid

pytestmark = pytest.mark.usefixtures("stack")

FRAME_BURST = 100  # the defaults the stack runs with
RATE_LIMITED_BEFORE_CLOSE = 200


def test_a_flood_of_sync_frames_is_rate_limited_then_closed_with_4429() -> None:
    a, b = register("syncflood"), register("syncflood")
    cid = single_cid(a, b)
    sock = a.ws()
    sync = {"type": "sync", "conversation_id": cid, "after_seq": 0}
    try:
        for i in range(FRAME_BURST + RATE_LIMITED_BEFORE_CLOSE + 300):
            sock.send(sync)
            if i % 20 == 0:
                sock.drain()  # reading along, so the close frame is seen when it comes
        code = sock.closed_with()
    except ConnectionClosed:
        code = sock.close_code
    assert code == 4429
    answers = [f["type"] if f["type"] != "error" else f["code"] for f in sock.frames]
    assert answers[:FRAME_BURST - 1] == ["sync_result"] * (FRAME_BURST - 1)  # the burst (less the settling ping)
    # How many of the answers written around the close reach the client varies; their kinds do not.
    assert answers.count("rate_limited") > 0
    assert set(answers) == {"sync_result", "rate_limited"}
    limited = next(f for f in sock.frames if f["type"] == "error")
    assert set(limited) == {"type", "code", "detail"}

    # The user is not locked out: a new socket has its own bucket.
    assert a.ws().request(sync, "sync_result")["type"] == "sync_result"


def test_a_person_at_a_human_pace_is_never_rate_limited() -> None:
    """A reconnect's burst (a sync for each of 60 conversations), then 240 mixed frames
    at 15 a second: sync, read, typing, ping and send, each sent without waiting."""
    a, b = register("pace"), register("pace")
    cid = single_cid(a, b)
    sock, peer = a.ws(), b.ws()
    peer.ack_for(peer.send_message(cid, "hello"))
    for _ in range(60):
        sock.send({"type": "sync", "conversation_id": cid, "after_seq": 0})
    mix = [
        {"type": "sync", "conversation_id": cid, "after_seq": 0},
        {"type": "read", "conversation_id": cid, "seq": 1},
        {"type": "typing", "conversation_id": cid},
        {"type": "ping"},
        None,  # a send
    ]
    cmids = []
    for i in range(240):
        frame = mix[i % len(mix)]
        if frame is None:
            cmids.append(sock.send_message(cid, f"at a human pace {i}", client_msg_id=uuid.uuid4().hex))
        else:
            sock.send(frame)
        sock.quiet(1 / 15)
    for cmid in cmids:
        assert sock.ack_for(cmid)["type"] == "ack"

    def answered(kind: str) -> int:
        return sum(f["type"] == kind for f in sock.frames)

    deadline = time.monotonic() + 10
    while answered("sync_result") < 60 + 48 or answered("pong") < 48:
        assert time.monotonic() < deadline, f"answers missing: {sock.frames[-5:]}"
        sock.quiet(0.1)
    errors = [f for f in sock.frames if f["type"] == "error"]
    assert not errors, errors[:5]


def test_frame_and_send_buckets_are_separate() -> None:
    """Exhausting the frame bucket leaves sends alone (they have their own per-user bucket)."""
    a, b = register("sep"), register("sep")
    cid = single_cid(a, b)
    sock = a.ws()
    for _ in range(FRAME_BURST + 20):
        sock.send({"type": "ping"})
    deadline = time.monotonic() + 10
    while not any(f["type"] == "error" and f["code"] == "rate_limited" for f in sock.frames):
        assert time.monotonic() < deadline, "no rate_limited answer to the flood of pings"
        sock.quiet(0.1)
    assert sock.ack_for(sock.send_message(cid, "sends are counted apart"))["type"] == "ack"
