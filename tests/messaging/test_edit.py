"""Editing a sent text message (v1.1 "Edit") on the live stack: who may, the window, the
push to every member device, history/sync/last_message/search after an edit, and an edit
that races the message's own persistence."""

import time
from typing import Any

import pytest

from tests.client import Socket, User, bulk_users, chat_with_stored_history, register, single_cid
from tests.stack import Stack, wait_until

pytestmark = pytest.mark.usefixtures("stack")


def _edit_frame(sock: Socket, message_id: str) -> dict[str, Any]:
    return sock.wait_for(lambda f: f["type"] == "edit" and f["message_id"] == message_id)


def _old_message_id(minutes: int) -> int:
    """A message id whose embedded send time lies `minutes` in the past."""
    from messaging.snowflake import EPOCH_MS, SEQUENCE_BITS, WORKER_BITS

    return (int(time.time() * 1000) - minutes * 60 * 1000 - EPOCH_MS) << (WORKER_BITS + SEQUENCE_BITS)


def test_rest_edit_reaches_every_device_and_history_sync_and_list_show_it(db_reader) -> None:
    a, b = register("ed"), register("ed")
    sa, sa2, sb = a.ws(), a.ws("tgw2"), b.ws("tgw2")
    cid = single_cid(a, b)
    ack = sa.ack_for(sa.send_message(cid, "helo wrold"))
    mid = ack["message_id"]
    assert sb.message()["edited_at"] is None  # a pushed message carries the fields as at send time
    before = int(time.time() * 1000)
    assert a.post(f"/api/messages/{mid}/edit", {"body": "hello world"}).status_code == 204
    pushes = [_edit_frame(s, mid) for s in (sa, sa2, sb)]  # every device, the editor's own included
    assert pushes[0] == pushes[1] == pushes[2]
    assert {k: v for k, v in pushes[0].items() if k != "edited_at"} == {
        "type": "edit", "conversation_id": cid, "message_id": mid, "seq": ack["seq"], "body": "hello world"}
    assert pushes[0]["edited_at"] >= before
    synced = sb.sync(cid)[0]
    assert (synced["body"], synced["edited_at"], synced["seq"]) == ("hello world", pushes[0]["edited_at"], ack["seq"])
    db_reader.wait_stored(cid, 1)
    stored = b.get(f"/api/conversations/{cid}/messages", params={"before_seq": 2}).json()["messages"][0]
    assert (stored["body"], stored["edited_at"]) == ("hello world", pushes[0]["edited_at"])
    item = next(c for c in b.get("/api/conversations").json() if c["conversation_id"] == cid)
    assert (item["last_message"]["body"], item["last_message"]["edited_at"]) == ("hello world",
                                                                                 pushes[0]["edited_at"])


def test_websocket_edit_and_its_errors() -> None:
    a, b = register("ew"), register("ew")
    sa, sb = a.ws(), b.ws()
    cid = single_cid(a, b)
    mid = sa.ack_for(sa.send_message(cid, "first"))["message_id"]
    sa.send({"type": "edit", "message_id": mid, "body": "second"})
    assert _edit_frame(sa, mid)["body"] == "second"  # the acting connection gets the push too
    assert _edit_frame(sb, mid)["body"] == "second"
    assert sb.request({"type": "edit", "message_id": mid, "body": "mine now"}, "edit")["code"] == "forbidden"
    assert sa.request({"type": "edit", "message_id": "999", "body": "x"}, "edit")["code"] == "not_found"
    eve = register("eve").ws()  # a message of a conversation you cannot read does not exist for you
    assert eve.request({"type": "edit", "message_id": mid, "body": "x"}, "edit")["code"] == "not_found"
    for bad in ({"message_id": mid, "body": "   "}, {"message_id": mid, "body": "x" * 4001},
                {"message_id": mid}, {"message_id": int(mid), "body": "x"}, {"message_id": mid, "body": 5}):
        assert sa.request({"type": "edit", **bad}, "edit")["code"] == "invalid", bad
    sa.send({"type": "ping"})  # bad input never closes the socket
    assert sa.wait_for(lambda f: f["type"] == "pong")
    assert not [f for f in sb.quiet(0.3) if f["type"] == "edit"]  # no refused edit was pushed


def test_rest_edit_errors(db_reader) -> None:
    a, b = register("er"), register("er")
    sa = a.ws()
    cid = single_cid(a, b)
    mid = sa.ack_for(sa.send_message(cid, "text"))["message_id"]
    assert b.post(f"/api/messages/{mid}/edit", {"body": "x"}).status_code == 403
    assert register("x").post(f"/api/messages/{mid}/edit", {"body": "x"}).status_code == 404
    assert a.post("/api/messages/123456789/edit", {"body": "x"}).status_code == 404
    for bad in ({"body": ""}, {"body": " \n"}, {"body": "x" * 4001}, {}, {"body": 7}, {"body": None}):
        r = a.post(f"/api/messages/{mid}/edit", bad)
        assert (r.status_code, r.json()["code"]) == (400, "invalid"), (bad, r.text)
    assert a.post(f"/api/messages/{mid}/edit", ["x"]).status_code == 400
    image = sa.ack_for(sa.send_message(cid, "https://example.com/cat.png", kind="image"))["message_id"]
    r = a.post(f"/api/messages/{image}/edit", {"body": "a dog"})
    assert r.status_code == 403 and "text" in r.json()["detail"]
    recalled = sa.ack_for(sa.send_message(cid, "regret"))["message_id"]
    assert a.post(f"/api/messages/{recalled}/recall").status_code == 204
    r = a.post(f"/api/messages/{recalled}/edit", {"body": "no regret"})
    assert r.status_code == 403 and "recalled" in r.json()["detail"]
    db_reader.wait_stored(cid, 3)
    r = a.post(f"/api/messages/{recalled}/edit", {"body": "no regret"})  # also once stored
    assert r.status_code == 403 and "recalled" in r.json()["detail"]


def test_edit_after_the_window_is_refused(db_reader) -> None:
    from messaging.models import Message

    a, b = register("ewin"), register("ewin")
    cid = single_cid(a, b)
    old_id, fresh_id = _old_message_id(61), _old_message_id(59)
    now = int(time.time() * 1000)
    with db_reader.access():
        for seq, mid in ((1, old_id), (2, fresh_id)):
            Message.objects.create(message_id=mid, conversation_id=cid, seq=seq, sender_id=a.id, body="old",
                                   client_msg_id=f"old-{mid}", ts=now)
    r = a.post(f"/api/messages/{old_id}/edit", {"body": "new"})
    assert r.status_code == 403 and "within 3600 s" in r.json()["detail"]
    assert a.post(f"/api/messages/{fresh_id}/edit", {"body": "new"}).status_code == 204  # 59 min: still inside
    with db_reader.access():
        assert Message.objects.get(message_id=old_id).body == "old"
        assert Message.objects.get(message_id=fresh_id).body == "new"


def test_edit_racing_its_own_persistence_is_not_lost(stack: Stack, db_reader) -> None:
    a, b, sa, cid = chat_with_stored_history(db_reader, 1, "erace")
    sb = b.ws()
    stack.persist_worker.kill()
    try:
        ack = sa.ack_for(sa.send_message(cid, "tpyo before my row exists"))
        assert a.post(f"/api/messages/{ack['message_id']}/edit", {"body": "typo fixed before storage"}).status_code \
            == 204
        assert _edit_frame(sb, ack["message_id"])["body"] == "typo fixed before storage"
        assert sb.sync(cid, after_seq=1)[0]["body"] == "typo fixed before storage"  # from the recent cache
        gone = sa.ack_for(sa.send_message(cid, "edited then recalled"))["message_id"]
        assert a.post(f"/api/messages/{gone}/edit", {"body": "zucchini"}).status_code == 204
        assert a.post(f"/api/messages/{gone}/recall").status_code == 204
    finally:
        stack.persist_worker.start()
    db_reader.wait_stored(cid, 3, timeout=60)
    stored = b.get(f"/api/conversations/{cid}/messages", params={"before_seq": 4}).json()["messages"]
    msg = stored[1]
    assert (msg["message_id"], msg["body"]) == (ack["message_id"], "typo fixed before storage")
    assert msg["edited_at"] is not None
    assert (stored[2]["message_id"], stored[2]["recalled"], stored[2]["body"]) == (gone, True, "")  # recall wins
    assert b.get("/api/search", params={"q": "zucchini"}).json()["results"] == []
    found = b.get("/api/search", params={"q": "storage", "conversation_id": cid}).json()["results"]
    assert [m["message_id"] for m in found] == [ack["message_id"]]
    assert b.get("/api/search", params={"q": "tpyo", "conversation_id": cid}).json()["results"] == []


def test_search_matches_the_edited_body_not_the_old_one(db_reader) -> None:
    a, b = register("es"), register("es")
    sa = a.ws()
    cid = single_cid(a, b)
    mid = sa.ack_for(sa.send_message(cid, "pineapple pizza"))["message_id"]
    db_reader.wait_stored(cid, 1)

    def hits(q: str) -> list[str]:
        return [m["message_id"] for m in b.get("/api/search", params={"q": q, "conversation_id": cid})
                .json()["results"]]

    wait_until(lambda: hits("pineapple") == [mid], 10, "the message indexed")
    assert a.post(f"/api/messages/{mid}/edit", {"body": "mango salad"}).status_code == 204
    assert hits("mango") == [mid]
    assert hits("pineapple") == []
    assert b.get("/api/search", params={"q": "mango"}).json()["results"][0]["body"] == "mango salad"


def test_two_edits_keep_the_last_one() -> None:
    a, b = register("e2"), register("e2")
    sa, sb = a.ws(), b.ws()
    cid = single_cid(a, b)
    mid = sa.ack_for(sa.send_message(cid, "v1"))["message_id"]
    for body in ("v2", "v3"):
        assert a.post(f"/api/messages/{mid}/edit", {"body": body}).status_code == 204
        assert _edit_frame(sb, mid)["body"] == body
    assert sb.sync(cid)[0]["body"] == "v3"


def test_edit_in_a_large_group_reaches_members_through_the_fan_out(django_db_blocker) -> None:
    """Over GOCHAT_LARGE_GROUP_THRESHOLD (50 in the tests) the edit goes through the
    chunked fan-out, as messages do: every online member's devices, on both gateways."""
    owner = register("elg")
    with django_db_blocker.unblock():
        members = bulk_users(60, "elg")
    g = owner.post("/api/groups", {"name": "big", "member_ids": [m.id for m in members]}).json()
    online: list[User] = members[:4]
    socks = [m.ws("tgw1" if i % 2 else "tgw2") for i, m in enumerate(online)]
    so, so2 = owner.ws(), owner.ws("tgw2")
    ack = so.ack_for(so.send_message(g["conversation_id"], "big news"))
    assert ack["type"] == "ack", ack
    mid = ack["message_id"]
    for s in socks:
        s.message()
    assert owner.post(f"/api/messages/{mid}/edit", {"body": "bigger news"}).status_code == 204
    for s in [*socks, so, so2]:
        assert _edit_frame(s, mid)["body"] == "bigger news"
    sm = online[0].ws()
    assert sm.sync(g["conversation_id"])[-1]["body"] == "bigger news"


def test_a_sender_who_left_the_group_cannot_edit_there() -> None:
    """Once out of the group, its messages do not exist for the former member (404), and
    the members get no edit push from them."""
    owner, leaver = register("eleft"), register("eleft")
    g = owner.post("/api/groups", {"name": "left", "member_ids": [leaver.id]}).json()
    so, sl = owner.ws(), leaver.ws()
    ack = sl.ack_for(sl.send_message(g["conversation_id"], "bye soon"))
    assert ack["type"] == "ack", ack
    so.message()
    assert leaver.delete(f"/api/groups/{g['id']}/members/{leaver.id}").status_code == 204
    r = leaver.post(f"/api/messages/{ack['message_id']}/edit", {"body": "rewritten after leaving"})
    assert (r.status_code, r.json()["code"]) == (404, "not_found")
    assert not [f for f in so.quiet(0.5) if f["type"] == "edit"]
    assert so.sync(g["conversation_id"])[-1]["body"] == "bye soon"
