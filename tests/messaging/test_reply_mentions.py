"""Replies and mentions (v1.1 "Reply", "Mentions") on the live stack: what a reply may
name, what a send may mention, and `unread_mentions` in the conversation list under
read, recall, delete-for-me and group joins."""

import uuid
from typing import Any

import pytest

from tests.client import Socket, User, register, single_cid
from tests.stack import wait_until

pytestmark = pytest.mark.usefixtures("stack")


def _send(sock: Socket, cid: str, body: str, **fields: Any) -> dict[str, Any]:
    """The ack (or error) of a WebSocket send."""
    return sock.ack_for(sock.send_message(cid, body, **fields))


def _rest_send(user: User, cid: str, body: str, **fields: Any) -> Any:
    return user.post("/api/messages", {"conversation_id": cid, "client_msg_id": uuid.uuid4().hex, "body": body,
                                       **fields})


def _unread_mentions(user: User, cid: str) -> int:
    item = next(c for c in user.get("/api/conversations").json() if c["conversation_id"] == cid)
    return int(item["unread_mentions"])


def _pair(prefix: str) -> tuple[User, User, Socket, Socket, str]:
    """Two new users, a socket each, and their 1:1."""
    a, b = register(prefix), register(prefix)
    return a, b, a.ws(), b.ws(), single_cid(a, b)


def _group(owner: User, *members: User) -> dict[str, Any]:
    r = owner.post("/api/groups", {"name": "rm", "member_ids": [m.id for m in members]})
    assert r.status_code == 201, r.text
    return dict(r.json())


# --- reply ---------------------------------------------------------------------------


def test_reply_is_stored_pushed_and_returned_with_its_target(db_reader) -> None:
    a, b, sa, sb, cid = _pair("rp")
    first = _send(sa, cid, "question?")
    sb.message()
    reply = _send(sb, cid, "answer", reply_to=first["message_id"])
    assert reply["type"] == "ack", reply
    expected = {"message_id": first["message_id"], "seq": first["seq"], "sender_id": a.id}
    assert sa.message()["reply_to"] == expected  # the push
    assert sa.sync(cid)[1]["reply_to"] == expected  # sync, from the recent cache
    db_reader.wait_stored(cid, 2)
    history = a.get(f"/api/conversations/{cid}/messages", params={"before_seq": 3}).json()["messages"]
    assert [m["reply_to"] for m in history] == [None, expected]
    assert [m["mentions"] for m in history] == [[], []]
    r = _rest_send(a, cid, "over REST", reply_to=reply["message_id"])
    assert r.status_code == 202, r.text
    assert sb.message()["reply_to"] == {"message_id": reply["message_id"], "seq": reply["seq"], "sender_id": b.id}


def test_reply_to_a_message_of_another_conversation_is_not_found() -> None:
    a, b, c = register("rx"), register("rx"), register("rx")
    sa = a.ws()
    elsewhere = _send(sa, single_cid(a, c), "in another chat")
    err = _send(sa, single_cid(a, b), "reply across", reply_to=elsewhere["message_id"])
    assert (err["type"], err["code"]) == ("error", "not_found")
    r = _rest_send(a, single_cid(a, b), "reply across", reply_to=elsewhere["message_id"])
    assert (r.status_code, r.json()["code"]) == (404, "not_found")
    err = _send(sa, single_cid(a, b), "reply to nothing", reply_to="12345")
    assert (err["type"], err["code"]) == ("error", "not_found")
    for bad in (12345, "abc", "", ["1"]):
        err = _send(sa, single_cid(a, b), "bad reply_to", reply_to=bad)
        assert (err["type"], err["code"]) == ("error", "invalid"), bad
    assert _rest_send(a, single_cid(a, b), "bad", reply_to=5).status_code == 400


def test_reply_to_a_message_from_before_the_senders_group_join_is_not_found(db_reader) -> None:
    owner, m1, late = register("rj"), register("rj"), register("rj")
    g = _group(owner, m1)
    cid = g["conversation_id"]
    so = owner.ws()
    before = _send(so, cid, "before you came")
    assert before["type"] == "ack", before
    db_reader.wait_stored(cid, 1)
    assert owner.post(f"/api/groups/{g['id']}/members", {"user_ids": [late.id]}).status_code == 200
    after = _send(so, cid, "after you came")
    sl = late.ws()
    err = _send(sl, cid, "what was that?", reply_to=before["message_id"])
    assert (err["type"], err["code"]) == ("error", "not_found")
    assert _send(sl, cid, "got it", reply_to=after["message_id"])["type"] == "ack"
    assert _send(m1.ws(), cid, "I was here", reply_to=before["message_id"])["type"] == "ack"


def test_reply_to_a_recalled_message_is_allowed() -> None:
    a, _, sa, sb, cid = _pair("rr")
    gone = _send(sa, cid, "never mind")
    assert a.post(f"/api/messages/{gone['message_id']}/recall").status_code == 204
    ack = _send(sb, cid, "too late, I saw it", reply_to=gone["message_id"])
    assert ack["type"] == "ack", ack
    assert sa.message(lambda m: m["message_id"] == ack["message_id"])["reply_to"]["seq"] == gone["seq"]


def test_reply_to_a_message_deleted_for_me_is_not_found() -> None:
    """Deleted for yourself, a message is gone from your history: you cannot answer it;
    your peer, who still sees it, can."""
    _, b, sa, sb, cid = _pair("rh")
    target = _send(sa, cid, "hide me")
    assert b.delete(f"/api/messages/{target['message_id']}").status_code == 204
    err = _send(sb, cid, "answering the hidden", reply_to=target["message_id"])
    assert (err["type"], err["code"]) == ("error", "not_found")
    r = _rest_send(b, cid, "answering the hidden", reply_to=target["message_id"])
    assert (r.status_code, r.json()["code"]) == (404, "not_found")
    assert _send(sa, cid, "I still see it", reply_to=target["message_id"])["type"] == "ack"


# --- mentions ------------------------------------------------------------------------


def test_mentions_must_name_participants(db_reader) -> None:
    owner, m1, outsider = register("mn"), register("mn"), register("mn")
    g = _group(owner, m1)
    so = owner.ws()
    ack = _send(so, g["conversation_id"], "hey @m1", mentions=[m1.id, m1.id, owner.id])
    assert ack["type"] == "ack", ack
    err = _send(so, g["conversation_id"], "hey stranger", mentions=[m1.id, outsider.id])
    assert (err["type"], err["code"]) == ("error", "invalid")
    err = _send(so, single_cid(owner, m1), "not in this 1:1", mentions=[outsider.id])
    assert (err["type"], err["code"]) == ("error", "invalid")
    assert _send(so, single_cid(owner, m1), "you", mentions=[m1.id])["type"] == "ack"
    r = _rest_send(owner, g["conversation_id"], "stranger", mentions=[outsider.id])
    assert (r.status_code, r.json()["code"]) == (400, "invalid")
    db_reader.wait_stored(g["conversation_id"], 1)
    stored = m1.get(f"/api/conversations/{g['conversation_id']}/messages").json()["messages"]
    assert stored[0]["mentions"] == [m1.id, owner.id]  # duplicates dropped, order kept


def test_more_than_fifty_mentions_or_bad_ids_are_invalid() -> None:
    a, b = register("m50"), register("m50")
    sa = a.ws()
    cid = single_cid(a, b)
    assert _send(sa, cid, "fifty", mentions=[b.id] * 50)["type"] == "ack"
    for bad in ([b.id] * 51, [str(b.id)], [True], [0], [-3], "1", {"id": 1}, [2**70]):
        err = _send(sa, cid, "bad mentions", mentions=bad)
        assert (err["type"], err["code"]) == ("error", "invalid"), bad
    r = _rest_send(a, cid, "fifty-one", mentions=[b.id] * 51)
    assert (r.status_code, r.json()["code"]) == (400, "invalid")


def test_unread_mentions_follow_read_recall_and_delete_for_me(db_reader) -> None:
    owner, me, other = register("um"), register("um"), register("um")
    g = _group(owner, me, other)
    cid = g["conversation_id"]
    so, sme = owner.ws(), me.ws()
    m1 = _send(so, cid, "@me one", mentions=[me.id])
    _send(so, cid, "no mention")
    m3 = _send(so, cid, "@me three", mentions=[me.id, other.id])
    m4 = _send(so, cid, "@me four", mentions=[me.id])
    _send(sme, cid, "I mention myself", mentions=[me.id])  # never an unread mention of one's own
    db_reader.wait_stored(cid, 5)
    assert _unread_mentions(me, cid) == 3
    assert _unread_mentions(other, cid) == 1
    assert _unread_mentions(owner, cid) == 0
    assert me.post(f"/api/conversations/{cid}/read", {"seq": m1["seq"]}).status_code == 204
    assert _unread_mentions(me, cid) == 2
    assert owner.post(f"/api/messages/{m3['message_id']}/recall").status_code == 204
    assert _unread_mentions(me, cid) == 1
    assert _unread_mentions(other, cid) == 0
    assert me.delete(f"/api/messages/{m4['message_id']}").status_code == 204
    assert _unread_mentions(me, cid) == 0
    last = _send(so, cid, "@me again", mentions=[me.id])
    db_reader.wait_stored(cid, 6)
    assert _unread_mentions(me, cid) == 1
    sme.send({"type": "read", "conversation_id": cid, "seq": last["seq"]})
    wait_until(lambda: _unread_mentions(me, cid) == 0, 10, "read over the WebSocket clears the mention")


def test_unread_mentions_start_at_a_group_join(db_reader) -> None:
    """A member who leaves and rejoins is not counted for mentions from before the rejoin."""
    owner, me = register("uj"), register("uj")
    g = _group(owner, me)
    cid = g["conversation_id"]
    so = owner.ws()
    _send(so, cid, "@me before I left", mentions=[me.id])
    db_reader.wait_stored(cid, 1)
    assert _unread_mentions(me, cid) == 1
    assert me.delete(f"/api/groups/{g['id']}/members/{me.id}").status_code == 204
    assert all(c["conversation_id"] != cid for c in me.get("/api/conversations").json())
    _send(so, cid, "while away")
    db_reader.wait_stored(cid, 2)
    assert owner.post(f"/api/groups/{g['id']}/members", {"user_ids": [me.id]}).status_code == 200
    assert _unread_mentions(me, cid) == 0
    _send(so, cid, "@me welcome back", mentions=[me.id])
    db_reader.wait_stored(cid, 3)
    assert _unread_mentions(me, cid) == 1


def test_a_plain_send_stores_no_reply_and_no_mentions(db_reader) -> None:
    from messaging.models import Message, MessageMention

    a, b = register("pl"), register("pl")
    sa = a.ws()
    cid = single_cid(a, b)
    ack = _send(sa, cid, "plain")
    db_reader.wait_stored(cid, 1)
    with db_reader.access():
        row = Message.objects.get(message_id=int(ack["message_id"]))
        assert (row.reply_to, row.mentions, row.edited_at) == (None, None, None)
        assert not MessageMention.objects.filter(message_id=row.message_id).exists()
    msg = b.get(f"/api/conversations/{cid}/messages").json()["messages"][0]
    assert (msg["reply_to"], msg["mentions"], msg["edited_at"]) == (None, [], None)
