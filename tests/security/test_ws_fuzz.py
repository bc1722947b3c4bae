"""Hypothesis fuzzes WebSocket frames against the live gateway: random JSON, wrong
types, huge numbers, deep nesting, invalid UTF-8, binary and oversized frames.

The contract (docs/protocol.md): every bad frame gets an `error` frame with one of
the protocol's codes, the socket stays open (never 1011, never silently dead) and
answers a `ping` with `pong` afterwards. More than 20 bad frames in 10 s close with
4400, so each socket takes at most FRAMES_PER_SOCKET fuzzed frames."""

import json
import re
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed

from tests.client import Socket, User, register, single_cid

pytestmark = pytest.mark.usefixtures("stack")

MAX_FRAME_BYTES = 16 * 1024
FRAMES_PER_SOCKET = 12  # bad frames per socket: well under the 4400 threshold (> 20 in 10 s)
ERROR_CODES = {"invalid", "not_member", "too_large", "rate_limited", "forbidden", "unknown_type",
               "not_found"}  # not_found: an `edit` of a message id the user cannot see
FUZZ_SETTINGS = settings(max_examples=300, deadline=None, database=None, print_blob=True,
                         suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@dataclass(frozen=True)
class Frame:
    payload: str | bytes  # bytes go out as a binary frame
    expect: str  # "pong", or "error" (any protocol code), or "error:<code>"

    def __repr__(self) -> str:
        shown = self.payload if len(self.payload) < 300 else self.payload[:300]
        return f"Frame({shown!r}{'...' if len(self.payload) >= 300 else ''}, {len(self.payload)} bytes, {self.expect})"


# --- strategies -------------------------------------------------------------------

# Conversation ids set by the `fuzzed` fixture: three the fuzzing user is not in, and its own 1:1.
CIDS: dict[str, str] = {}
CLIENT_MSG_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def foreign_cids() -> st.SearchStrategy[str]:
    return st.sampled_from(["single", "group", "nogroup"]).map(lambda k: CIDS[k])


def own_cid() -> st.SearchStrategy[str]:
    return st.just("own").map(lambda k: CIDS[k])


malformed_cids = st.one_of(
    st.sampled_from(["", "s_", "s_2_1", "s_0_1", "g_0", "g_-1", "g_x", "s_1_2_3", "G_1", " g_1", "g_1 ",
                     "s_1_" + "9" * 30, "g_" + "9" * 19, "g_" + "9" * 40, "s_01_2", "g_1\n", "g_\u0661"]),
    st.text(max_size=50),
)
huge_ints = st.one_of(st.integers(min_value=2**53 + 1, max_value=2**256), st.integers(max_value=-1, min_value=-2**256),
                      st.sampled_from([2**63, 2**64, -(2**63) - 1, 10**100]))
json_leaves = st.one_of(st.none(), st.booleans(), st.integers(), huge_ints,
                        st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=30))
json_values = st.recursive(json_leaves, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)), max_leaves=15)
wrong = st.one_of(json_values, huge_ints)  # any JSON value, mostly of the wrong type for the field
cmids = st.one_of(st.from_regex(r"\A[A-Za-z0-9_-]{1,64}\Z"), wrong)
cids = st.one_of(foreign_cids(), malformed_cids, wrong)


def _maybe(field: str, values: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.one_of(st.just({}), values.map(lambda v: {field: v}))


def typed_frames() -> st.SearchStrategy[dict[str, Any]]:
    """Frames of a real type with fields of any type: never valid for this user (the
    conversation is foreign or malformed), so each must get an error."""
    send = st.tuples(_maybe("client_msg_id", cmids), _maybe("conversation_id", cids),
                     _maybe("body", st.one_of(st.text(max_size=50), wrong)),
                     _maybe("kind", st.one_of(st.sampled_from(["text", "image", "file", "custom", "video"]), wrong)),
                     _maybe("extra", st.one_of(st.dictionaries(st.text(max_size=5), json_values, max_size=3), wrong)))
    sync = st.tuples(_maybe("conversation_id", cids),
                     _maybe("after_seq", st.one_of(st.integers(0, 10), huge_ints, wrong)),
                     _maybe("limit", st.one_of(st.integers(-5, 300), huge_ints, wrong)))
    read = st.tuples(_maybe("conversation_id", cids), _maybe("seq", st.one_of(st.integers(0, 10), huge_ints, wrong)))
    # The fuzzing user sends no message, so no id names one they may edit.
    edit = st.tuples(_maybe("message_id", st.one_of(st.from_regex(r"\A[0-9]{1,20}\Z"), st.text(max_size=25), wrong)),
                     _maybe("body", st.one_of(st.text(max_size=50), wrong)))

    def build(kind: str, parts: tuple[dict[str, Any], ...]) -> dict[str, Any]:
        out: dict[str, Any] = {"type": kind}
        for part in parts:
            out.update(part)
        return out

    return st.one_of(send.map(lambda p: build("send", p)), sync.map(lambda p: build("sync", p)),
                     read.map(lambda p: build("read", p)), edit.map(lambda p: build("edit", p)))


def own_frames_with_one_bad_field() -> st.SearchStrategy[dict[str, Any]]:
    """Frames into the user's own 1:1 that would be accepted but for one bad field."""
    not_str = json_values.filter(lambda v: not isinstance(v, str))

    def variants(cid: str) -> list[str]:
        return [cid + "\n", cid + " ", " " + cid, cid.upper(), cid + "\x00", cid.replace("_", "-"),
                cid.replace("s_", "s_0")]

    bad_cid = st.one_of(own_cid().flatmap(lambda c: st.sampled_from(variants(c))), not_str)
    bad = {
        "client_msg_id": st.one_of(st.text(max_size=70).filter(lambda t: not CLIENT_MSG_ID.fullmatch(t)),
                                   st.from_regex(r"\A[A-Za-z0-9_-]{1,60}\n\Z"), not_str),
        "conversation_id": bad_cid,
        "body": st.one_of(not_str, st.text(alphabet=" \t\n\r", max_size=5)),  # a text body must not be blank
        "kind": st.one_of(st.text(max_size=10).filter(lambda k: k not in ("text", "image", "file", "custom")),
                          not_str),
        "extra": json_values.filter(lambda v: v is not None and not isinstance(v, dict)),
        # A reply_to that is not a message id string; mentions not a list of at most 50 user ids.
        "reply_to": st.one_of(st.text(max_size=25).filter(lambda t: not (t.isascii() and t.isdigit())),
                              json_values.filter(lambda v: v is not None and not isinstance(v, str))),
        "mentions": st.one_of(json_values.filter(lambda v: v is not None and not isinstance(v, list)),
                              st.lists(st.one_of(st.integers(max_value=0), huge_ints, st.text(max_size=5),
                                                 st.booleans()), min_size=1, max_size=4),
                              st.lists(st.integers(1, 10**6), min_size=51, max_size=60)),
    }

    def send(field: str, value: Any) -> dict[str, Any]:
        frame = {"type": "send", "client_msg_id": "fz-ok", "conversation_id": CIDS["own"], "body": "hi",
                 "kind": "text", "extra": {}}
        frame[field] = value
        return frame

    sends = st.sampled_from(sorted(bad)).flatmap(lambda f: bad[f].map(lambda v: send(f, v)))
    syncs = bad_cid.map(lambda c: {"type": "sync", "conversation_id": c, "after_seq": 0})
    reads = bad_cid.map(lambda c: {"type": "read", "conversation_id": c, "seq": 0})
    return st.one_of(sends, syncs, reads)


def _text(value: Any) -> str:
    return json.dumps(value)


def _no_ping(value: Any) -> bool:
    return not (isinstance(value, dict) and value.get("type") == "ping")


number_literals = st.sampled_from(["1e400", "-1e400", "1e-400", "123456789012345678901234567890123456789",
                                   "-0", "0.0", "1.0", "9007199254740993", "18446744073709551616", "NaN",
                                   "Infinity", "-Infinity", "0x10", "01", "+1", ".5", "1.", "1e", "--1"])
number_frames = st.builds(
    lambda tmpl, lit: tmpl.replace("N", lit),
    st.sampled_from(['{"type":"read","conversation_id":"@C@","seq":N}',
                     '{"type":"sync","conversation_id":"@C@","after_seq":N}',
                     '{"type":"sync","conversation_id":"@C@","after_seq":0,"limit":N}',
                     '{"type":"send","client_msg_id":"n1","conversation_id":"@C@","body":"x","extra":{"n":N}}',
                     '{"type":N}', "N", "[N]"]),
    number_literals,
)


def deep(depth: int, shape: str) -> str:
    if shape == "list":
        return "[" * depth + "]" * depth
    if shape == "object":
        return '{"a":' * depth + "1" + "}" * depth
    return '{"type":"send","client_msg_id":"d1","conversation_id":"@C@","body":"x","extra":' + (
        '{"a":' * depth + "1" + "}" * depth) + "}"


deep_frames = st.builds(deep, st.integers(min_value=64, max_value=5000), st.sampled_from(["list", "object", "extra"]))


def invalid_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


bad_utf8 = st.one_of(
    st.binary(min_size=1, max_size=200).filter(invalid_utf8),
    st.builds(lambda prefix, junk: prefix + junk + b'"}',
              st.sampled_from([b'{"type":"ping","x":"', b'{"type":"send","client_msg_id":"u1","conversation_id":"@C@",'
                                                        b'"body":"']),
              st.sampled_from([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80", b"\xc0\xaf",
                               b"\xe2\x82", b"\xf4\x90\x80\x80"])),
)


def oversized(size: int, binary: bool) -> Frame:
    text = '{"type":"ping","pad":"' + "x" * size + '"}'  # a ping, but over the limit: too_large wins
    return Frame(text.encode() if binary else text, "error:too_large")


def frames() -> st.SearchStrategy[Frame]:
    def as_frame(text: str, binary: bool) -> Frame:
        return Frame(text.encode() if binary else text, "error")

    return st.one_of(
        st.builds(as_frame, json_values.filter(_no_ping).map(_text), st.booleans()),
        st.builds(as_frame, typed_frames().map(_text), st.booleans()),
        st.builds(lambda f, b: Frame(_text(f).encode() if b else _text(f), "error:invalid"),
                  own_frames_with_one_bad_field(), st.booleans()),
        st.builds(as_frame, number_frames, st.booleans()),
        st.builds(as_frame, deep_frames, st.booleans()),
        st.builds(as_frame, st.text(max_size=200).filter(lambda t: _parses_to_non_ping(t)), st.booleans()),
        bad_utf8.map(lambda raw: Frame(raw, "error:invalid")),
        st.builds(oversized, st.integers(min_value=MAX_FRAME_BYTES, max_value=300_000), st.booleans()),
        # Control: a well-formed ping, as text or binary, must still get a pong.
        st.sampled_from([Frame('{"type":"ping"}', "pong"), Frame(b'{"type":"ping"}', "pong"),
                         Frame('{"type":"ping","extra":[1,{"x":null}]}', "pong")]),
    )


def _parses_to_non_ping(text: str) -> bool:
    try:
        return _no_ping(json.loads(text))
    except ValueError:
        return True


# --- the socket under test ---------------------------------------------------------


class Fuzzed:
    """One user's sockets; a fresh one every FRAMES_PER_SOCKET frames."""

    def __init__(self, user: User) -> None:
        self.user = user
        self.sock: Socket | None = None
        self.sent = 0
        self.sockets = 0

    def socket(self) -> Socket:
        if self.sock is None or self.sent >= FRAMES_PER_SOCKET:
            self.close()
            self.sock = self.user.ws()
            self.sockets += 1
            self.sent = 0
        self.sent += 1
        return self.sock

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


@pytest.fixture(scope="module")
def fuzzed(stack) -> Fuzzed:
    me, a, b, owner = register("wsfz"), register("wsfz"), register("wsfz"), register("wsfz")
    r = owner.post("/api/groups", {"name": "not yours", "member_ids": [a.id]})
    assert r.status_code == 201, r.text
    CIDS.update({"single": single_cid(a, b), "group": r.json()["conversation_id"], "nogroup": "g_999999999",
                 "own": single_cid(me, a)})
    out = Fuzzed(me)
    yield out
    out.close()


def _fill(frame: Frame) -> Frame:
    """Templates name conversations as @C@ (foreign) and @OWN@ (the user's own 1:1)."""
    payload = frame.payload
    for name, key in (("@C@", "single"), ("@OWN@", "own")):
        payload = payload.replace(name.encode(), CIDS[key].encode()) if isinstance(payload, bytes) \
            else payload.replace(name, CIDS[key])
    return Frame(payload, frame.expect)


def exchange(fuzzed: Fuzzed, frame: Frame) -> dict[str, Any]:
    """Send one frame on the current socket; the reply to it (the next error/pong), or
    fail with the close code."""
    sock = fuzzed.socket()
    try:
        if isinstance(frame.payload, bytes):
            sock.conn.send(frame.payload)  # a binary frame
        else:
            sock.send(frame.payload)
        reply = sock.wait_for(lambda f: f["type"] in ("error", "pong", "ack", "sync_result", "read"), timeout=10)
    except ConnectionClosed:
        fuzzed.sock = None  # the next example gets a fresh socket
        pytest.fail(f"the server closed the socket with {sock.close_code} after {frame!r}")
    except TimeoutError:
        fuzzed.close()
        pytest.fail(f"no reply within 10 s to {frame!r}")
    return reply


def check_reply(frame: Frame, reply: dict[str, Any]) -> None:
    if frame.expect == "pong":
        assert reply == {"type": "pong"}, (frame, reply)
        return
    assert reply["type"] == "error", (frame, reply)
    assert reply["code"] in ERROR_CODES and isinstance(reply["detail"], str), reply
    if frame.expect.startswith("error:"):
        assert reply["code"] == frame.expect.split(":", 1)[1], (frame, reply)
    assert set(reply) <= {"type", "code", "detail", "client_msg_id"}, reply


@FUZZ_SETTINGS
@given(frame=frames())
@example(frame=Frame('{"type":"send","client_msg_id":"k1","conversation_id":"@C@","body":"x","kind":[]}', "error"))
@example(frame=Frame('{"type":"send","client_msg_id":"k2","conversation_id":"@C@","body":"x","kind":{"a":1}}', "error"))
@example(frame=Frame('{"type":"send","client_msg_id":"s1","conversation_id":"@C@","body":"\\ud800"}', "error"))
@example(frame=Frame(b"\xff\xfe\x00garbage", "error:invalid"))
# Python's `$` also matches before a trailing newline: "s_1_2\n" is no conversation id, "c1\n" no client_msg_id.
@example(frame=Frame('{"type":"send","client_msg_id":"nl1","conversation_id":"@OWN@\\n","body":"x"}', "error:invalid"))
@example(frame=Frame('{"type":"sync","conversation_id":"@OWN@\\n","after_seq":0}', "error:invalid"))
@example(frame=Frame('{"type":"send","client_msg_id":"nl2\\n","conversation_id":"@OWN@","body":"x"}', "error:invalid"))
@example(frame=Frame("x" * (1024 * 1024), "error:too_large"))
@example(frame=Frame("[" * 100_000, "error:too_large"))
@example(frame=Frame("[" * 8000 + "]" * 8000, "error:invalid"))
def test_every_bad_frame_gets_an_error_and_the_socket_lives(fuzzed: Fuzzed, frame: Frame) -> None:
    frame = _fill(frame)
    check_reply(frame, exchange(fuzzed, frame))
    fuzzed.sent -= 1  # the ping below is no bad frame: the same socket must answer it
    assert exchange(fuzzed, Frame('{"type":"ping"}', "pong")) == {"type": "pong"}


def test_invalid_utf8_in_a_text_frame_fails_only_that_connection(fuzzed: Fuzzed) -> None:
    """RFC 6455 8.1: a text frame that is not UTF-8 fails the WebSocket connection. That
    is the WebSocket layer's duty (Autobahn under Daphne), before the application sees
    the frame: it drops the TCP connection (no close frame, so the client sees none) or
    sends 1007. Never 1011, and the user's other sockets and new ones are unaffected.
    (Binary frames carrying invalid UTF-8 are the application's: they get `error`.)"""
    other = fuzzed.user.ws()
    sock = fuzzed.user.ws()
    sock.conn.send(b'{"type":"ping","x":"\xff"}', text=True)
    assert sock.closed_with() in (None, 1007)
    assert other.request({"type": "ping"}, "pong") == {"type": "pong"}
    other.close()
    fresh = fuzzed.user.ws()
    assert fresh.request({"type": "ping"}, "pong") == {"type": "pong"}
    fresh.close()


def test_exactly_the_protocol_threshold_of_bad_frames_closes_with_4400(fuzzed: Fuzzed) -> None:
    """20 bad frames in 10 s are answered; the 21st closes with 4400 (protocol)."""
    sock = fuzzed.user.ws()
    for i in range(20):
        sock.send(f"garbage {i}")
        assert sock.wait_for(lambda f: f["type"] == "error")["code"] == "invalid"
    assert sock.request({"type": "ping"}, "pong") == {"type": "pong"}
    sock.send("one too many")
    assert sock.closed_with() == 4400


def test_fuzzing_user_can_still_send(fuzzed: Fuzzed) -> None:
    """After all that, the user's real traffic is accepted (no lingering rate limit or ban)."""
    peer = register("wsfz")
    sock = fuzzed.user.ws()
    cmid = uuid.uuid4().hex
    ack = sock.ack_for(sock.send_message(single_cid(fuzzed.user, peer), "still here", cmid))
    assert ack["type"] == "ack", ack
