"""Sessions on open sockets (docs/protocol.md): a socket is authorised
until the `exp` of its access token, an `auth` frame with a fresh token of the same user
moves that, and at expiry the gateway closes with 4401. Live stack; the tokens are
minted here with lifetimes of seconds."""

import time
import uuid

import pytest
from websockets.exceptions import ConnectionClosed

from tests.client import Socket, access_token, register, single_cid

pytestmark = pytest.mark.usefixtures("stack")

CLOSE_LATENESS_S = 2.0  # how late after exp the 4401 may arrive on a loaded test machine


def sleep_until(epoch_s: float) -> None:
    time.sleep(max(0.0, epoch_s - time.time()))


def assert_closed_at_expiry(sock: Socket, exp: int) -> None:
    """The socket closes with 4401 at exp: not before, and not much after."""
    code = sock.closed_with(timeout=exp - time.time() + CLOSE_LATENESS_S + 3)
    closed_at = time.time()
    assert code == 4401
    assert exp <= closed_at < exp + CLOSE_LATENESS_S, (exp, closed_at)


def test_socket_closes_with_4401_when_its_token_expires_and_not_before() -> None:
    u = register("sess")
    token, exp = access_token(u.id, expires_in=3)
    sock = Socket.open(token)
    while time.time() < exp - 0.6:  # served right up to the expiry
        assert sock.request({"type": "ping"}, "pong") == {"type": "pong"}
        time.sleep(0.2)
    assert_closed_at_expiry(sock, exp)


def test_auth_with_a_fresh_token_moves_the_expiry_on_the_same_socket() -> None:
    a, b = register("sess"), register("sess")
    first, first_exp = access_token(a.id, expires_in=3)
    fresh, fresh_exp = access_token(a.id, expires_in=7)
    sock, peer = Socket.open(first), b.ws()
    cid = single_cid(a, b)

    assert sock.request({"type": "auth", "token": fresh}, "auth_ok") == {"type": "auth_ok",
                                                                         "expires_at": fresh_exp * 1000}
    sleep_until(first_exp + 0.5)
    # Past the first token's expiry: the socket still serves frames, sends and pushes.
    assert sock.request({"type": "ping"}, "pong") == {"type": "pong"}
    assert sock.ack_for(sock.send_message(cid, "after the old expiry"))["type"] == "ack"
    peer.ack_for(peer.send_message(cid, "and back"))
    assert sock.message()["body"] == "and back"
    assert_closed_at_expiry(sock, fresh_exp)


def test_an_auth_with_the_same_expiry_is_accepted_and_changes_nothing() -> None:
    u = register("sess")
    token, exp = access_token(u.id, expires_in=30)
    sock = Socket.open(token)
    assert sock.request({"type": "auth", "token": token}, "auth_ok") == {"type": "auth_ok", "expires_at": exp * 1000}


def test_refused_auth_frames_get_invalid_and_the_socket_keeps_its_old_expiry() -> None:
    u, other = register("sess"), register("sess")
    token, exp = access_token(u.id, expires_in=5)
    earlier, _ = access_token(u.id, expires_in=2)
    expired, _ = access_token(u.id, expires_in=-10)
    others, _ = access_token(other.id, expires_in=600)
    refused = [
        others,  # another user's token: never adopted, however long it lives
        other.access,
        "garbage",
        "a.b.c",
        expired,
        earlier,  # valid, but it would shorten the session
        u.refresh,  # a refresh token is no access token
    ]
    sock = Socket.open(token)
    for bad in refused:
        reply = sock.request({"type": "auth", "token": bad}, "auth_ok")
        assert (reply["type"], reply["code"]) == ("error", "invalid"), (bad, reply)
        assert "client_msg_id" not in reply
    for frame in ({"type": "auth"}, {"type": "auth", "token": 5}, {"type": "auth", "token": ""}):
        assert sock.request(frame, "auth_ok")["code"] == "invalid"
    assert sock.request({"type": "ping"}, "pong") == {"type": "pong"}  # still open
    assert_closed_at_expiry(sock, exp)


def test_frames_sent_after_expiry_are_not_served(db_reader) -> None:
    """Sends stream across the expiry: every one the pipeline took left the client before
    exp, and all those sent well before it were taken (the close came no earlier)."""
    a, b = register("late"), register("late")
    cid = single_cid(a, b)
    token, exp = access_token(a.id, expires_in=3)
    sock = Socket.open(token)
    sleep_until(exp - 0.6)
    sent_at: dict[str, float] = {}
    try:
        while time.time() < exp + 1.5:
            cmid = f"late-{uuid.uuid4().hex[:12]}"
            sent_at[cmid] = time.time()  # before it leaves: a frame served at t < exp was sent earlier still
            sock.send_message(cid, "racing the expiry", client_msg_id=cmid)
            sock.quiet(0.01)  # reading the acks meanwhile, so the close frame is seen when it comes
        code = sock.closed_with(timeout=CLOSE_LATENESS_S + 3)
    except ConnectionClosed:
        code = sock.close_code
    assert code == 4401

    # On a new socket: a marker after them in the conversation's order, then what was stored.
    fresh = a.ws()
    fresh.ack_for(fresh.send_message(cid, "marker", client_msg_id="marker"))
    served = {m["client_msg_id"] for m in fresh.sync(cid)} - {"marker"}
    assert served <= set(sent_at)
    late = {cmid: sent_at[cmid] - exp for cmid in served if sent_at[cmid] >= exp}
    assert not late, f"served after the expiry: {late}"
    early = {cmid for cmid, at in sent_at.items() if at < exp - 0.3}
    assert early and early <= served
