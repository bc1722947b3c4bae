"""1:1 messaging end to end (docs/protocol.md guarantees) on the live stack: Daphne
gateways, the logic consumer and Celery workers as real processes."""

import uuid

import pytest

from tests.client import Socket, User, register, single_cid
from tests.conftest import Db
from tests.stack import wait_until

pytestmark = pytest.mark.usefixtures("stack")


@pytest.fixture
def pair() -> tuple[User, User]:
    return register("a"), register("b")


def test_ack_has_every_field_and_peer_receives_the_message(pair: tuple[User, User]) -> None:
    a, b = pair
    sa, sb = a.ws(), b.ws()
    cid = single_cid(a, b)
    cmid = sa.send_message(cid, "hello")
    ack = sa.ack_for(cmid)
    assert ack["type"] == "ack"
    assert set(ack) == {"type", "client_msg_id", "message_id", "conversation_id", "seq", "ts"}
    assert ack["conversation_id"] == cid and ack["seq"] == 1
    assert isinstance(ack["message_id"], str) and ack["message_id"].isdigit()
    assert isinstance(ack["ts"], int) and ack["ts"] > 1_700_000_000_000
    msg = sb.message()
    assert msg == {"message_id": ack["message_id"], "conversation_id": cid, "seq": 1, "sender_id": a.id,
                   "kind": "text", "body": "hello", "extra": {}, "client_msg_id": cmid, "ts": ack["ts"],
                   "recalled": False, "edited_at": None, "reply_to": None, "mentions": [],
                   "reactions": []}


def test_senders_other_device_receives_the_message_but_not_the_ack(pair: tuple[User, User]) -> None:
    a, b = pair
    phone, laptop = a.ws(), a.ws()
    cid = single_cid(a, b)
    cmid = phone.send_message(cid, "from my phone")
    ack = phone.ack_for(cmid)
    mirrored = laptop.message()
    assert mirrored["message_id"] == ack["message_id"] and mirrored["body"] == "from my phone"
    assert not [f for f in laptop.quiet(0.3) if f["type"] == "ack"]
    assert not [f for f in phone.quiet(0.3) if f["type"] == "message"]


def test_notes_to_self_conversation() -> None:
    a = register("self")
    s1, s2 = a.ws(), a.ws()
    cid = f"s_{a.id}_{a.id}"
    ack = s1.ack_for(s1.send_message(cid, "note"))
    assert ack["seq"] == 1
    assert s2.message()["body"] == "note"


def test_resend_with_same_client_msg_id_returns_first_ack(pair: tuple[User, User], db_reader) -> None:
    a, b = pair
    sa = a.ws()
    cid = single_cid(a, b)
    first = sa.ack_for(sa.send_message(cid, "once", client_msg_id="same-id"))
    again = sa.ack_for(sa.send_message(cid, "once", client_msg_id="same-id"))
    assert again == first
    sa.ack_for(sa.send_message(cid, "next"))
    rows = db_reader.wait_stored(cid, 2)
    assert [(seq, cmid) for seq, _, cmid in rows] == [(1, "same-id"), (2, rows[1][2])]


def test_a_client_msg_id_reused_in_another_conversation_is_another_message(pair: tuple[User, User],
                                                                           db_reader) -> None:
    """Idempotency is per (sender, conversation, client_msg_id): on a Redis Cluster the
    record lives in the conversation's slot group, and MySQL's unique key says the same,
    so the second send is stored too (it used to be acked, then dropped by persistence)."""
    a, b = pair
    c = register("reuse")
    sa = a.ws()
    first, second = single_cid(a, b), single_cid(a, c)
    ack1 = sa.ack_for(sa.send_message(first, "to b", client_msg_id="reused-id"))
    ack2 = sa.ack_for(sa.send_message(second, "to c", client_msg_id="reused-id"))
    assert (ack1["type"], ack1["conversation_id"], ack1["seq"]) == ("ack", first, 1)
    assert (ack2["type"], ack2["conversation_id"], ack2["seq"]) == ("ack", second, 1)
    assert ack1["message_id"] != ack2["message_id"]
    assert sa.ack_for(sa.send_message(second, "to c", client_msg_id="reused-id")) == ack2  # a resend still is one
    assert [(seq, mid) for seq, mid, _ in db_reader.wait_stored(first, 1)] == [(1, ack1["message_id"])]
    assert [(seq, mid) for seq, mid, _ in db_reader.wait_stored(second, 1)] == [(1, ack2["message_id"])]


def test_resend_after_persistence_still_returns_first_ack(pair: tuple[User, User], db_reader) -> None:
    a, b = pair
    sa = a.ws()
    cid = single_cid(a, b)
    first = sa.ack_for(sa.send_message(cid, "stored first", client_msg_id="persisted-id"))
    db_reader.wait_stored(cid, 1)
    assert sa.ack_for(sa.send_message(cid, "stored first", client_msg_id="persisted-id")) == first
    assert len(db_reader.stored(cid)) == 1


def test_hundred_rapid_sends_get_seq_1_to_100_in_send_order(pair: tuple[User, User], db_reader) -> None:
    a, b = pair
    sa, sb = a.ws(), b.ws()
    cid = single_cid(a, b)
    cmids = [sa.send_message(cid, f"m{i}", client_msg_id=f"rapid-{i}") for i in range(100)]
    acks = [sa.ack_for(c) for c in cmids]
    assert [x["seq"] for x in acks] == list(range(1, 101))
    received = [sb.message() for _ in range(100)]
    assert [m["seq"] for m in received] == list(range(1, 101))
    assert [m["body"] for m in received] == [f"m{i}" for i in range(100)]
    rows = db_reader.wait_stored(cid, 100)
    assert [r[0] for r in rows] == list(range(1, 101))
    assert [r[2] for r in rows] == cmids


def test_offline_user_syncs_everything_and_sees_unread(pair: tuple[User, User], db_reader: Db) -> None:
    a, b = pair
    sa = a.ws()
    cid = single_cid(a, b)
    acks = [sa.ack_for(sa.send_message(cid, f"while you were out {i}")) for i in range(30)]
    # Straight away: some of these may still be queued for persistence; sync must return them all.
    sb = b.ws()
    synced = sb.sync(cid, after_seq=0, limit=7)
    assert [m["message_id"] for m in synced] == [x["message_id"] for x in acks]
    assert sb.sync(cid, after_seq=25) == synced[25:]
    db_reader.wait_messages([int(acks[0]["message_id"])])  # a new 1:1 is listed once its first message is stored
    convs = b.get("/api/conversations").json()
    mine = next(c for c in convs if c["conversation_id"] == cid)
    assert mine["kind"] == "single" and mine["peer_id"] == a.id
    assert (mine["max_seq"], mine["read_seq"], mine["unread"]) == (30, 0, 30)


def test_conversation_list_is_most_recent_first_with_last_message() -> None:
    me, x, y = register("me"), register("x"), register("y")
    s = me.ws()
    s.ack_for(s.send_message(single_cid(me, x), "to x"))
    s.ack_for(s.send_message(single_cid(me, y), "to y"))
    wait_until(lambda: len(me.get("/api/conversations").json()) == 2, 15, "both conversations listed")
    convs = wait_until(lambda: (c := me.get("/api/conversations").json())[0]["last_message"] and c, 15, "last msg")
    assert [c["conversation_id"] for c in convs] == [single_cid(me, y), single_cid(me, x)]
    assert convs[0]["last_message"]["body"] == "to y"


def test_read_receipts_reach_peer_and_readers_other_devices(pair: tuple[User, User]) -> None:
    a, b = pair
    sa, sb1, sb2 = a.ws(), b.ws(), b.ws()
    cid = single_cid(a, b)
    for i in range(3):
        sa.ack_for(sa.send_message(cid, f"r{i}"))
    sb1.send({"type": "read", "conversation_id": cid, "seq": 2})
    receipt = sa.wait_for(lambda f: f["type"] == "read")
    assert receipt == {"type": "read", "conversation_id": cid, "user_id": b.id, "seq": 2}
    assert sb2.wait_for(lambda f: f["type"] == "read")["seq"] == 2
    # read_seq only moves forward; a seq past the end is clamped to max_seq.
    assert b.post(f"/api/conversations/{cid}/read", {"seq": 1}).status_code == 204
    assert b.post(f"/api/conversations/{cid}/read", {"seq": 99}).status_code == 204
    mine = next(c for c in b.get("/api/conversations").json() if c["conversation_id"] == cid)
    assert (mine["read_seq"], mine["unread"]) == (3, 0)
    assert sa.wait_for(lambda f: f["type"] == "read" and f["seq"] == 3)["user_id"] == b.id


def test_history_pages_forward_and_backward(pair: tuple[User, User]) -> None:
    a, b = pair
    sa = a.ws()
    cid = single_cid(a, b)
    for i in range(12):
        sa.ack_for(sa.send_message(cid, f"h{i}"))
    page = b.get(f"/api/conversations/{cid}/messages", params={"after_seq": 0, "limit": 5}).json()
    assert [m["seq"] for m in page["messages"]] == [1, 2, 3, 4, 5] and page["has_more"]
    # before_seq reads MySQL only, which may lag the acks by a batch.
    back = wait_until(lambda: (p := b.get(f"/api/conversations/{cid}/messages",
                                         params={"before_seq": 12, "limit": 5}).json())["messages"][-1:] and
                      p["messages"][-1]["seq"] == 11 and p, 15, "stored history")
    assert [m["seq"] for m in back["messages"]] == [7, 8, 9, 10, 11] and back["has_more"]
    for bad in [{"limit": 0}, {"limit": 201}, {"after_seq": -1}, {"before_seq": "x"}]:
        assert b.get(f"/api/conversations/{cid}/messages", params=bad).status_code == 400


def test_outsider_cannot_write_or_read_a_pair_conversation(pair: tuple[User, User]) -> None:
    a, b = pair
    eve = register("eve")
    se = eve.ws()
    cid = single_cid(a, b)
    err = se.ack_for(se.send_message(cid, "let me in"))
    assert err["type"] == "error" and err["code"] == "not_member"
    assert se.request({"type": "sync", "conversation_id": cid, "after_seq": 0}, "sync_result")["code"] == "not_member"
    assert se.request({"type": "read", "conversation_id": cid, "seq": 1}, "read")["code"] == "not_member"
    assert eve.get(f"/api/conversations/{cid}/messages").status_code == 403
    assert eve.post(f"/api/conversations/{cid}/read", {"seq": 1}).status_code == 403
    assert eve.post("/api/messages", {"conversation_id": cid, "client_msg_id": "x1", "body": "hi"}).status_code == 403
    assert eve.get("/api/conversations/nonsense/messages").status_code == 404


def test_rest_send_for_bots_uses_the_same_pipeline(pair: tuple[User, User]) -> None:
    a, b = pair
    sb = b.ws()
    cid = single_cid(a, b)
    r = a.post("/api/messages", {"conversation_id": cid, "client_msg_id": "bot-1", "body": "beep"})
    assert r.status_code == 202 and r.json() == {"client_msg_id": "bot-1"}
    assert sb.message()["body"] == "beep"
    assert a.post("/api/messages", {"conversation_id": cid, "client_msg_id": "bad id!", "body": "x"}).status_code == 400
    assert a.post("/api/messages", {"conversation_id": cid, "client_msg_id": "big", "body": "x" * 4001}
                  ).status_code == 413
    assert a.post("/api/messages", [1]).status_code == 400
    deep: dict = {}
    for _ in range(20):
        deep = {"a": deep}
    r = a.post("/api/messages", {"conversation_id": cid, "client_msg_id": "deep", "body": "x", "extra": deep})
    assert r.status_code == 400 and "nested" in r.json()["detail"], r.text
    flat = {"a": {"b": [1, {"c": "ok"}]}}
    assert a.post("/api/messages", {"conversation_id": cid, "client_msg_id": "flat", "body": "x", "extra": flat}
                  ).status_code == 202


def test_send_to_a_banned_peer_is_forbidden(pair: tuple[User, User], db_reader) -> None:
    from accounts.models import User as UserModel

    a, b = pair
    sa = a.ws()
    with db_reader.access():
        UserModel.objects.filter(pk=b.id).update(is_active=False)
    err = sa.ack_for(sa.send_message(single_cid(a, b), "are you there?"))
    assert (err["type"], err["code"]) == ("error", "forbidden")


MALFORMED = [
    ("not json", "invalid"),
    ("[1, 2]", "invalid"),
    ('"a string"', "invalid"),
    ("{}", "invalid"),
    ('{"type": 5}', "invalid"),
    ('{"type": "dance"}', "unknown_type"),
    ('{"type": "send"}', "invalid"),
    ('{"type": "send", "client_msg_id": "ok", "conversation_id": "s_2_1", "body": "x"}', "invalid"),
    ('{"type": "send", "client_msg_id": "ok", "conversation_id": "s_1_2", "body": 5}', "invalid"),
    ('{"type": "send", "client_msg_id": "bad id", "conversation_id": "s_1_2", "body": "x"}', "invalid"),
    ('{"type": "send", "client_msg_id": "ok", "conversation_id": "s_1_2", "body": "x", "kind": "video"}',
     "invalid"),
    ('{"type": "send", "client_msg_id": "ok", "conversation_id": "s_1_2", "body": "x", "extra": []}', "invalid"),
    ('{"type": "send", "client_msg_id": "ok", "conversation_id": "s_1_2", "body": "' + "x" * 4001 + '"}',
     "too_large"),
    ('{"type": "send", "client_msg_id": "ok", "conversation_id": "s_1_2", "body": "x", "extra": {"k": "'
     + "y" * 5000 + '"}}', "too_large"),
    ('{"type": "sync", "conversation_id": "s_1_2", "after_seq": -1}', "invalid"),
    ('{"type": "sync", "conversation_id": "s_1_2", "after_seq": 0, "limit": 1000}', "invalid"),
    ('{"type": "sync", "conversation_id": "s_1_2", "after_seq": 1e400}', "invalid"),
    ('{"type": "read", "conversation_id": "g_x", "seq": 1}', "invalid"),
    ('{"type": "read", "conversation_id": "s_1_2", "seq": true}', "invalid"),
    ("{" * 5000 + "}" * 5000, "invalid"),
    # extra nested near orjson's 254 levels passed validation, then broke the upstream encoder (1011).
    ('{"type": "send", "client_msg_id": "ok", "conversation_id": "s_1_2", "body": "x", "extra": '
     + '{"a":' * 250 + "1" + "}" * 250 + "}", "invalid"),
    ('{"type": "send", "client_msg_id": "ok", "conversation_id": "s_1_2", "body": "x", "extra": '
     + '{"a":[' * 9 + "1" + "]}" * 9 + "}", "invalid"),
    ("x" * (17 * 1024), "too_large"),
]


@pytest.mark.parametrize(("raw", "code"), MALFORMED, ids=[f"frame{i}" for i in range(len(MALFORMED))])
def test_malformed_frames_get_error_and_socket_stays_open(raw: str, code: str) -> None:
    sock = register("fuzz").ws()
    sock.send(raw)
    err = sock.wait_for(lambda f: f["type"] == "error")
    assert err["code"] == code, err
    assert sock.request({"type": "ping"}, "pong")["type"] == "pong"


def test_binary_frames_are_answered_not_fatal() -> None:
    sock = register("bin").ws()
    sock.conn.send(b"\xff\xfe\x00garbage")
    assert sock.wait_for(lambda f: f["type"] == "error")["code"] == "invalid"
    assert sock.request({"type": "ping"}, "pong")["type"] == "pong"


def test_persistent_garbage_closes_with_4400() -> None:
    sock = register("abuser").ws()
    for _ in range(40):
        sock.send("garbage")
    assert sock.closed_with() == 4400


def test_send_rate_limit_answers_rate_limited() -> None:
    a, b = register("fast"), register("slow")
    sock = a.ws()
    cid = single_cid(a, b)
    for i in range(260):
        sock.send_message(cid, "spam", client_msg_id=f"flood-{i}")
    errors = [sock.ack_for(f"flood-{i}") for i in range(260)]
    limited = [e for e in errors if e["type"] == "error"]
    assert limited and all(e["code"] == "rate_limited" for e in limited)
    assert len(limited) < 260 - 150


@pytest.mark.parametrize("token", ["", "garbage", "a.b.c"])
def test_bad_token_closes_with_4401(token: str) -> None:
    sock = Socket.open(token, settle=False)
    assert sock.closed_with() == 4401


def test_expired_token_closes_with_4401(db_reader) -> None:
    from datetime import timedelta

    from rest_framework_simplejwt.tokens import AccessToken

    from accounts.models import User as UserModel

    u = register("expired")
    with db_reader.access():
        token = AccessToken.for_user(UserModel.objects.get(pk=u.id))
    token.set_exp(lifetime=-timedelta(seconds=5))
    assert Socket.open(str(token), settle=False).closed_with() == 4401


def test_token_in_authorization_header_is_accepted() -> None:
    from websockets.sync.client import connect

    from tests.stack import ws_url

    u = register("hdr")
    with connect(ws_url(), additional_headers={"Authorization": f"Bearer {u.access}"}) as conn:
        sock = Socket(conn)
        assert sock.request({"type": "ping"}, "pong")["type"] == "pong"


def test_banned_user_is_refused_with_4403(db_reader) -> None:
    from accounts.models import User as UserModel

    u = register("banned")
    with db_reader.access():
        UserModel.objects.filter(pk=u.id).update(is_active=False)
    assert Socket.open(u.access, settle=False).closed_with() == 4403


def test_ban_closes_live_sockets_on_every_gateway(db_reader) -> None:
    from accounts.services import users_ban

    u = register("kicked")
    s1, s2 = u.ws("tgw1"), u.ws("tgw2")
    with db_reader.access():
        users_ban(user_ids=[u.id])
    assert s1.closed_with(5) == 4403
    assert s2.closed_with(5) == 4403


def test_online_flag_follows_connections() -> None:
    a, b = register("on"), register("watcher")
    assert b.get(f"/api/users/{a.id}").json()["online"] is False
    sock = a.ws()
    assert b.get(f"/api/users/{a.id}").json()["online"] is True
    sock.close()
    wait_until(lambda: b.get(f"/api/users/{a.id}").json()["online"] is False, 5, "offline after disconnect")


def test_messages_cross_gateways(pair: tuple[User, User]) -> None:
    a, b = pair
    sa, sb = a.ws("tgw1"), b.ws("tgw2")
    cid = single_cid(a, b)
    ack = sa.ack_for(sa.send_message(cid, "across"))
    assert sb.message()["message_id"] == ack["message_id"]


def test_uuid_client_msg_ids_are_accepted(pair: tuple[User, User]) -> None:
    a, b = pair
    sa = a.ws()
    assert sa.ack_for(sa.send_message(single_cid(a, b), "x", client_msg_id=str(uuid.uuid4())))["type"] == "ack"


def test_logic_commits_its_upstream_offsets_once_a_burst_settles(pair: tuple[User, User]) -> None:
    """Logic does not wait for a batch's deliveries before taking the next one; it stores the
    offsets once they are acknowledged. After a burst, its committed offsets reach the end."""
    from gochat_project.infra import kafka
    from messaging.logic import logic_group_id

    a, b = pair
    sa, sb = a.ws(), b.ws()
    cid = single_cid(a, b)
    cmids = [sa.send_message(cid, f"burst {i}") for i in range(50)]
    assert [sa.ack_for(c)["seq"] for c in cmids] == list(range(1, 51))
    assert [sb.message()["seq"] for _ in cmids] == list(range(1, 51))
    wait_until(lambda: kafka.consumer_group_lag(logic_group_id(), kafka.upstream_topic()) == 0, 10,
               "logic's upstream offsets committed to the end", interval=0.3)
