"""Everyday features on the live stack: typing, sender recall, delete-for-me,
block list, mute and pin."""

import time

import pytest

from tests.client import User, chat_with_stored_history, register, single_cid
from tests.stack import Stack

pytestmark = pytest.mark.usefixtures("stack")


@pytest.fixture
def pair() -> tuple[User, User]:
    return register("ev"), register("ev")


def test_typing_is_relayed_at_most_once_per_interval(pair: tuple[User, User]) -> None:
    a, b = pair
    sa, sb = a.ws(), b.ws()
    cid = single_cid(a, b)
    started = time.monotonic()
    sa.send({"type": "typing", "conversation_id": cid})
    frame = sb.wait_for(lambda f: f["type"] == "typing")
    assert frame == {"type": "typing", "conversation_id": cid, "user_id": a.id}
    relay_ms = (time.monotonic() - started) * 1000
    for _ in range(20):  # a flood inside the 3 s interval: dropped quietly
        sa.send({"type": "typing", "conversation_id": cid})
    assert not [f for f in sb.quiet(1.5) if f["type"] == "typing"]
    assert not [f for f in sa.quiet(0.1) if f["type"] in ("error", "typing")]
    print(f"\ntyping relay: {relay_ms:.1f} ms")


def test_typing_in_a_foreign_conversation_is_not_member(pair: tuple[User, User]) -> None:
    a, b = pair
    eve = register("eve")
    se = eve.ws()
    assert se.request({"type": "typing", "conversation_id": single_cid(a, b)}, "typing")["code"] == "not_member"


def test_typing_reaches_small_group_members_but_not_the_typer() -> None:
    owner, m1 = register("tg"), register("tg")
    g = owner.post("/api/groups", {"name": "t", "member_ids": [m1.id]}).json()
    so, s1 = owner.ws(), m1.ws()
    so.send({"type": "typing", "conversation_id": g["conversation_id"]})
    assert s1.wait_for(lambda f: f["type"] == "typing")["user_id"] == owner.id
    assert not [f for f in so.quiet(0.5) if f["type"] == "typing"]


def test_sender_recalls_own_message(pair: tuple[User, User], db_reader) -> None:
    a, b = pair
    sa, sa2, sb = a.ws(), a.ws(), b.ws()
    cid = single_cid(a, b)
    ack = sa.ack_for(sa.send_message(cid, "oops"))
    assert sb.message()["message_id"] == ack["message_id"]
    assert b.post(f"/api/messages/{ack['message_id']}/recall").status_code == 403  # not b's message
    assert a.post(f"/api/messages/{ack['message_id']}/recall").status_code == 204
    for sock in (sa, sa2, sb):  # every device, the sender's included
        assert sock.wait_for(lambda f: f["type"] == "recall")["message_id"] == ack["message_id"]
    assert a.post(f"/api/messages/{ack['message_id']}/recall").status_code == 204  # twice: a no-op
    assert sb.sync(cid)[0]["recalled"] is True
    db_reader.wait_stored(cid, 1)
    msg = b.get(f"/api/conversations/{cid}/messages").json()["messages"][0]
    assert (msg["body"], msg["recalled"]) == ("", True)
    assert a.post("/api/messages/123456789/recall").status_code == 404


def test_recall_over_websocket_and_errors(pair: tuple[User, User]) -> None:
    a, b = pair
    sa, sb = a.ws(), b.ws()
    ack = sa.ack_for(sa.send_message(single_cid(a, b), "ws recall"))
    sa.send({"type": "recall", "message_id": ack["message_id"]})
    assert sb.wait_for(lambda f: f["type"] == "recall")["seq"] == ack["seq"]
    assert sa.wait_for(lambda f: f["type"] == "recall")["seq"] == ack["seq"]  # the sender's devices too
    assert sb.request({"type": "recall", "message_id": ack["message_id"]}, "recall")["code"] == "forbidden"
    assert sa.request({"type": "recall", "message_id": "999"}, "recall")["code"] == "not_found"
    assert sa.request({"type": "recall", "message_id": 5}, "recall")["code"] == "invalid"


def test_a_sender_who_left_the_group_can_still_recall_within_the_window() -> None:
    """docs/protocol.md: leaving right after a message sent by mistake must not make it
    permanent; an edit, by contrast, needs membership."""
    owner, leaver = register("rl"), register("rl")
    g = owner.post("/api/groups", {"name": "oops", "member_ids": [leaver.id]}).json()
    so, sl = owner.ws(), leaver.ws()
    ack = sl.ack_for(sl.send_message(g["conversation_id"], "wrong group"))
    assert so.message()["message_id"] == ack["message_id"]
    assert leaver.delete(f"/api/groups/{g['id']}/members/{leaver.id}").status_code == 204
    assert leaver.post(f"/api/messages/{ack['message_id']}/edit", {"body": "fixed"}).status_code == 404
    assert leaver.post(f"/api/messages/{ack['message_id']}/recall").status_code == 204
    assert so.wait_for(lambda f: f["type"] == "recall")["message_id"] == ack["message_id"]
    assert so.sync(g["conversation_id"])[0]["recalled"] is True


def test_recall_after_the_window_is_refused(pair: tuple[User, User], db_reader) -> None:
    from messaging.models import Message

    a, b = pair
    sa = a.ws()
    cid = single_cid(a, b)
    sa.ack_for(sa.send_message(cid, "old news"))
    db_reader.wait_stored(cid, 1)
    # A message id whose embedded time is past the window: an old stored message.
    from messaging.snowflake import EPOCH_MS, SEQUENCE_BITS, WORKER_BITS

    old_id = (int(time.time() * 1000) - 10 * 60 * 1000 - EPOCH_MS) << (WORKER_BITS + SEQUENCE_BITS)
    with db_reader.access():
        Message.objects.create(message_id=old_id, conversation_id=cid, seq=99, sender_id=a.id, body="x",
                               client_msg_id=f"old-{old_id}", ts=int(time.time() * 1000) - 600000)
    r = a.post(f"/api/messages/{old_id}/recall")
    assert r.status_code == 403 and "within" in r.json()["detail"]


def test_recall_racing_its_own_persistence(stack: Stack, db_reader) -> None:
    a, b, sa, cid = chat_with_stored_history(db_reader, 1, "rr")
    stack.persist_worker.kill()
    try:
        ack = sa.ack_for(sa.send_message(cid, "recall me before my row exists"))
        assert a.post(f"/api/messages/{ack['message_id']}/recall").status_code == 204
    finally:
        stack.persist_worker.start()
    db_reader.wait_stored(cid, 2, timeout=60)
    msg = b.get(f"/api/conversations/{cid}/messages", params={"before_seq": 3}).json()["messages"][1]
    assert (msg["message_id"], msg["body"], msg["recalled"]) == (ack["message_id"], "", True)


def test_delete_for_me_hides_on_my_devices_only(pair: tuple[User, User], db_reader) -> None:
    a, b = pair
    sa, sa2 = a.ws(), a.ws()
    cid = single_cid(a, b)
    keep = sa.ack_for(sa.send_message(cid, "keep"))
    gone = sa.ack_for(sa.send_message(cid, "hide me"))
    assert a.delete(f"/api/messages/{gone['message_id']}").status_code == 204
    assert sa2.wait_for(lambda f: f["type"] == "hidden")["message_id"] == gone["message_id"]
    assert [m["message_id"] for m in sa2.sync(cid)] == [keep["message_id"]]
    db_reader.wait_stored(cid, 2)
    assert [m["body"] for m in a.get(f"/api/conversations/{cid}/messages").json()["messages"]] == ["keep"]
    mine = next(c for c in a.get("/api/conversations").json() if c["conversation_id"] == cid)
    assert mine["last_message"]["message_id"] == keep["message_id"]
    assert [m["body"] for m in b.get(f"/api/conversations/{cid}/messages").json()["messages"]] == ["keep", "hide me"]
    assert register("x").delete(f"/api/messages/{gone['message_id']}").status_code == 404


def test_block_then_unblock(pair: tuple[User, User]) -> None:
    a, b = pair
    sa, sb = a.ws(), b.ws()
    cid = single_cid(a, b)
    assert b.post(f"/api/users/{a.id}/block").status_code == 204
    assert b.post(f"/api/users/{a.id}/block").status_code == 204  # idempotent
    assert [u["id"] for u in b.get("/api/users/blocked").json()["results"]] == [a.id]
    err = sa.ack_for(sa.send_message(cid, "hello?"))
    assert (err["type"], err["code"]) == ("error", "blocked")
    assert a.post("/api/messages", {"conversation_id": cid, "client_msg_id": "blk", "body": "x"}).status_code == 403
    sa.send({"type": "typing", "conversation_id": cid})
    assert not [f for f in sb.quiet(1.0) if f["type"] in ("typing", "message")]
    assert sb.ack_for(sb.send_message(cid, "I can still write"))["type"] == "ack"  # the blocker is not blocked
    assert b.delete(f"/api/users/{a.id}/block").status_code == 204
    assert sa.ack_for(sa.send_message(cid, "thanks"))["type"] == "ack"
    assert b.post(f"/api/users/{b.id}/block").status_code == 400
    assert b.post("/api/users/999999999/block").status_code == 404


def test_block_does_not_affect_groups() -> None:
    a, b = register("bg"), register("bg")
    g = a.post("/api/groups", {"name": "g", "member_ids": [b.id]}).json()
    b.post(f"/api/users/{a.id}/block")
    sa = a.ws()
    assert sa.ack_for(sa.send_message(g["conversation_id"], "group still works"))["type"] == "ack"


def test_mute_and_pin_order_the_conversation_list() -> None:
    me, x, y, z = register("pin"), register("pin"), register("pin"), register("pin")
    s = me.ws()
    for peer in (x, y, z):
        s.ack_for(s.send_message(single_cid(me, peer), f"hi {peer.username}"))
        time.sleep(0.05)
    from tests.stack import wait_until

    def order() -> list[str]:
        return [c["conversation_id"] for c in me.get("/api/conversations").json()]

    wait_until(lambda: order()[:1] == [single_cid(me, z)], 15, "most recent first")
    assert me.patch(f"/api/conversations/{single_cid(me, x)}", {"pinned": True, "muted": True}).status_code == 204
    convs = me.get("/api/conversations").json()
    assert [c["conversation_id"] for c in convs] == [single_cid(me, x), single_cid(me, z), single_cid(me, y)]
    assert (convs[0]["pinned"], convs[0]["muted"]) == (True, True)
    assert (convs[1]["pinned"], convs[1]["muted"]) == (False, False)
    assert me.patch(f"/api/conversations/{single_cid(me, x)}", {"pinned": False}).status_code == 204
    assert order() == [single_cid(me, z), single_cid(me, y), single_cid(me, x)]
    assert me.patch(f"/api/conversations/{single_cid(x, y)}", {"pinned": True}).status_code == 403
    assert me.patch(f"/api/conversations/{single_cid(me, x)}", {"pinned": "maybe"}).status_code == 400


def test_schema_of_the_conversation_list_names_mute_and_pin() -> None:
    """Clients built from /api/schema (and its fuzzing) see the fields the list returns."""
    me = register("sch")
    conversation = me.get("/api/schema", params={"format": "json"}).json()["components"]["schemas"]["Conversation"]
    assert conversation["properties"]["muted"]["type"] == conversation["properties"]["pinned"]["type"] == "boolean"
    assert {"muted", "pinned"} <= set(conversation["required"])
