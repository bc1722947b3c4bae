"""Reactions on the live stack (docs/protocol.md, "Reactions"): add and remove over REST
and the WebSocket, idempotent, counted once per user and emoji, at most 20 distinct emoji
a message, who may react, recalled targets, the `reaction` push to every member device
(a large group's through the chunked fan-out), and `reactions` in every message object."""

from typing import Any
from urllib.parse import quote

import pytest
import requests

from tests.client import Socket, User, bulk_users, chat_with_stored_history, register, single_cid
from tests.stack import Stack, gateway_url

pytestmark = pytest.mark.usefixtures("stack")

THUMBS, PARTY = "👍", "🎉"


def react_path(message_id: str, emoji: str) -> str:
    return f"/api/messages/{message_id}/reactions/{quote(emoji, safe='')}"


def _call(user: User, method: str, message_id: str, emoji: str) -> requests.Response:
    return requests.request(method, gateway_url(user.gateway_id) + react_path(message_id, emoji),
                            headers=user.headers, timeout=10)


def put(user: User, message_id: str, emoji: str) -> requests.Response:
    return _call(user, "PUT", message_id, emoji)


def delete(user: User, message_id: str, emoji: str) -> requests.Response:
    return _call(user, "DELETE", message_id, emoji)


def reaction_push(sock: Socket, timeout: float = 10.0) -> dict[str, Any]:
    return sock.wait_for(lambda f: f["type"] == "reaction", timeout)


def refused(sock: Socket, frame: dict[str, Any]) -> str:
    """The code of the `error` a frame gets (pushes that arrive meanwhile are left alone)."""
    sock.send(frame)
    return str(sock.wait_for(lambda f: f["type"] == "error")["code"])


def no_reaction_push(sock: Socket, seconds: float = 0.8) -> bool:
    return not [f for f in sock.quiet(seconds) if f["type"] == "reaction"]


def reactions_in_history(user: User, cid: str, message_id: str) -> list[dict[str, Any]]:
    messages = user.get(f"/api/conversations/{cid}/messages").json()["messages"]
    return next(m for m in messages if m["message_id"] == message_id)["reactions"]


def group_of(owner: User, members: list[User]) -> dict[str, Any]:
    r = owner.post("/api/groups", {"name": "reactions", "member_ids": [m.id for m in members]})
    assert r.status_code == 201, r.text
    return r.json()


def test_rest_add_and_remove_are_idempotent_and_counted_once_per_user() -> None:
    a, b = register("re"), register("re")
    cid = single_cid(a, b)
    sa, sb1, sb2 = a.ws(), b.ws(), b.ws("tgw2")
    ack = sa.ack_for(sa.send_message(cid, "react to me"))
    mid = ack["message_id"]
    assert sb1.message()["reactions"] == []  # a pushed message carries them as at send time: none
    assert put(b, mid, THUMBS).status_code == 204
    expected = {"type": "reaction", "conversation_id": cid, "message_id": mid, "user_id": b.id, "emoji": THUMBS,
                "op": "add"}
    for sock in (sa, sb1, sb2):  # every device of both users, the acting user's included
        assert reaction_push(sock) == expected
    assert put(b, mid, THUMBS).status_code == 204  # again: 204, nothing changes, nothing pushed
    assert no_reaction_push(sa)
    assert reactions_in_history(b, cid, mid) == [{"emoji": THUMBS, "count": 1, "me": True}]
    assert reactions_in_history(a, cid, mid) == [{"emoji": THUMBS, "count": 1, "me": False}]
    assert put(a, mid, PARTY).status_code == 204
    assert put(a, mid, THUMBS).status_code == 204
    # Ordered by first use, each counted once per user; `me` per caller.
    assert reactions_in_history(a, cid, mid) == [{"emoji": THUMBS, "count": 2, "me": True},
                                                 {"emoji": PARTY, "count": 1, "me": True}]
    for sock in (sa, sb1, sb2):
        assert [reaction_push(sock)["emoji"] for _ in range(2)] == [PARTY, THUMBS]
    assert delete(b, mid, THUMBS).status_code == 204
    assert delete(b, mid, THUMBS).status_code == 204  # twice: a no-op
    assert reactions_in_history(b, cid, mid) == [{"emoji": THUMBS, "count": 1, "me": False},
                                                 {"emoji": PARTY, "count": 1, "me": False}]
    assert reaction_push(sb2) == {**expected, "op": "remove"}
    assert no_reaction_push(sb2)  # the second delete pushed nothing


def test_websocket_react_add_and_remove_reach_every_device_once() -> None:
    a, b = register("rw"), register("rw")
    cid = single_cid(a, b)
    sa1, sa2, sb = a.ws(), a.ws("tgw2"), b.ws()
    mid = sa1.ack_for(sa1.send_message(cid, "ws reactions"))["message_id"]
    frame = {"type": "react", "message_id": mid, "emoji": "thumbs_up", "op": "add"}
    sa1.send(frame)
    for sock in (sa1, sa2, sb):
        assert reaction_push(sock)["op"] == "add"
    sa1.send(frame)  # the same add again: no answer, no push
    assert no_reaction_push(sb) and not [f for f in sa1.frames if f["type"] == "error"]
    assert [m["reactions"] for m in sb.sync(cid)] == [[{"emoji": "thumbs_up", "count": 1, "me": False}]]
    sa2.send({**frame, "op": "remove"})
    for sock in (sa1, sa2, sb):
        push = reaction_push(sock)
        assert (push["op"], push["user_id"], push["emoji"]) == ("remove", a.id, "thumbs_up")
    sa2.send({**frame, "op": "remove"})
    assert no_reaction_push(sb)
    assert [m["reactions"] for m in sa1.sync(cid)] == [[]]


def test_at_most_twenty_distinct_emoji_a_message() -> None:
    a, b = register("r20"), register("r20")
    cid = single_cid(a, b)
    sa = a.ws()
    mid = sa.ack_for(sa.send_message(cid, "so many"))["message_id"]
    emoji = [f"e{i}" for i in range(20)]
    for e in emoji:
        assert put(a, mid, e).status_code == 204
    r = put(b, mid, "e20")
    assert (r.status_code, r.json()["code"]) == (400, "invalid"), r.text
    assert refused(sa, {"type": "react", "message_id": mid, "emoji": "e20", "op": "add"}) == "invalid"
    assert put(b, mid, "e7").status_code == 204  # one of the twenty: still fine
    assert [x["emoji"] for x in reactions_in_history(a, cid, mid)] == emoji
    assert delete(a, mid, "e3").status_code == 204  # its only user leaves: 19 distinct, room for one
    assert put(b, mid, "e20").status_code == 204
    assert [x["emoji"] for x in reactions_in_history(b, cid, mid)] == [e for e in emoji if e != "e3"] + ["e20"]


@pytest.mark.parametrize("emoji", ["a b", "\t", "x\x01", "\x7f", "x" * 33, "\u3000"])
def test_malformed_emoji_is_invalid(emoji: str) -> None:
    a, b = register("rbad"), register("rbad")
    sa = a.ws()
    mid = sa.ack_for(sa.send_message(single_cid(a, b), "bad emoji"))["message_id"]
    for method in ("PUT", "DELETE"):
        r = _call(b, method, mid, emoji)
        assert (r.status_code, r.json()["code"]) == (400, "invalid"), (method, r.text)
    sb = b.ws()
    assert refused(sb, {"type": "react", "message_id": mid, "emoji": emoji, "op": "add"}) == "invalid"


def test_empty_emoji_is_invalid_on_the_socket_and_no_path_on_rest() -> None:
    a, b = register("remp"), register("remp")
    sa = a.ws()
    mid = sa.ack_for(sa.send_message(single_cid(a, b), "empty"))["message_id"]
    assert refused(sa, {"type": "react", "message_id": mid, "emoji": "", "op": "add"}) == "invalid"
    assert _call(a, "PUT", mid, "").status_code == 404  # .../reactions/ names no resource
    assert put(a, mid, "x" * 32).status_code == 204  # the longest allowed


def test_unknown_message_and_non_member_are_not_found() -> None:
    a, b, eve = register("rnf"), register("rnf"), register("rnf")
    sa = a.ws()
    mid = sa.ack_for(sa.send_message(single_cid(a, b), "private"))["message_id"]
    for user, target in ((a, "123456789"), (eve, mid)):
        for method in ("PUT", "DELETE"):
            r = _call(user, method, target, THUMBS)
            assert (r.status_code, r.json()["code"]) == (404, "not_found"), r.text
    se = eve.ws()
    assert refused(se, {"type": "react", "message_id": mid, "emoji": THUMBS, "op": "add"}) == "not_found"
    g = group_of(a, [b])
    ga = sa.ack_for(sa.send_message(g["conversation_id"], "group only"))["message_id"]
    assert put(eve, ga, THUMBS).status_code == 404
    assert no_reaction_push(sa, 0.3)


def test_a_member_cannot_react_to_history_before_their_join() -> None:
    owner, early, late = register("rj"), register("rj"), register("rj")
    g = group_of(owner, [early])
    so = owner.ws()
    before = so.ack_for(so.send_message(g["conversation_id"], "before you came"))["message_id"]
    assert owner.post(f"/api/groups/{g['id']}/members", {"user_ids": [late.id]}).status_code == 200
    after = so.ack_for(so.send_message(g["conversation_id"], "welcome"))["message_id"]
    r = put(late, before, THUMBS)
    assert (r.status_code, r.json()["code"]) == (404, "not_found"), r.text
    assert put(late, after, THUMBS).status_code == 204
    assert put(early, before, THUMBS).status_code == 204
    assert early.delete(f"/api/messages/{before}").status_code == 204  # deleted for early only
    assert put(early, before, PARTY).status_code == 404
    assert put(owner, before, PARTY).status_code == 204


def test_a_recalled_message_loses_its_reactions_and_takes_no_more(db_reader) -> None:
    a, b = register("rrc"), register("rrc")
    cid = single_cid(a, b)
    sa, sb = a.ws(), b.ws()
    mid = sa.ack_for(sa.send_message(cid, "take it back"))["message_id"]
    assert put(b, mid, THUMBS).status_code == 204 and put(a, mid, PARTY).status_code == 204
    assert a.post(f"/api/messages/{mid}/recall").status_code == 204
    sb.wait_for(lambda f: f["type"] == "recall")
    assert reactions_in_history(b, cid, mid) == []
    assert [m["reactions"] for m in sb.sync(cid)] == [[]]
    for method in ("PUT", "DELETE"):
        r = _call(b, method, mid, THUMBS)
        assert (r.status_code, r.json()["code"]) == (403, "forbidden"), r.text
    assert refused(sb, {"type": "react", "message_id": mid, "emoji": "x", "op": "add"}) == "forbidden"
    from messaging.models import Reaction

    with db_reader.access():
        assert not Reaction.objects.filter(message_id=int(mid)).exists()


def test_reaction_reaches_every_device_of_every_member_of_a_small_group() -> None:
    owner, m1, m2 = register("rsg"), register("rsg"), register("rsg")
    g = group_of(owner, [m1, m2])
    socks = [owner.ws(), m1.ws(), m1.ws("tgw2"), m2.ws("tgw2"), m2.ws()]
    mid = socks[0].ack_for(socks[0].send_message(g["conversation_id"], "small group"))["message_id"]
    socks[1].send({"type": "react", "message_id": mid, "emoji": PARTY, "op": "add"})
    for sock in socks:
        push = reaction_push(sock)
        assert (push["conversation_id"], push["message_id"], push["user_id"]) == (g["conversation_id"], mid, m1.id)
    for sock in socks[:2]:
        assert no_reaction_push(sock, 0.3)  # once each


def test_reaction_in_a_large_group_goes_through_the_chunked_fan_out(db_reader) -> None:
    owner = register("rlg")
    with db_reader.access():
        members = bulk_users(119, "rlg")
    g = group_of(owner, members)
    assert g["member_count"] == 120  # > GOCHAT_LARGE_GROUP_THRESHOLD (50 in tests), chunks of 100: two chunks
    cid = g["conversation_id"]
    online = members[:30] + members[100:110]  # both chunks
    socks = [m.ws("tgw1" if i % 2 else "tgw2") for i, m in enumerate(online)]
    socks += [members[0].ws("tgw1"), members[105].ws("tgw2")]  # second devices
    so = owner.ws()
    mid = so.ack_for(so.send_message(cid, "big news"))["message_id"]
    for sock in socks:
        sock.message()
    assert put(members[5], mid, THUMBS).status_code == 204
    for sock in [*socks, so]:
        push = reaction_push(sock, timeout=20)
        assert (push["message_id"], push["user_id"], push["op"]) == (mid, members[5].id, "add")
    assert all(no_reaction_push(s, 0.2) for s in socks[:5])  # exactly once
    offline = members[60]
    assert offline.ws().sync(cid)[0]["reactions"] == [{"emoji": THUMBS, "count": 1, "me": False}]
    # A recall there travels the same way (its routing once failed on a large group).
    assert owner.post(f"/api/messages/{mid}/recall").status_code == 204
    for sock in socks:
        assert sock.wait_for(lambda f: f["type"] == "recall", timeout=20)["message_id"] == mid


def test_reactions_in_history_sync_last_message_and_search(db_reader) -> None:
    a, b, sa, cid = chat_with_stored_history(db_reader, 2, "rhs")
    first, second = (m["message_id"] for m in sa.sync(cid))
    assert put(b, first, THUMBS).status_code == 204
    assert put(b, second, PARTY).status_code == 204 and put(a, second, PARTY).status_code == 204
    back = a.get(f"/api/conversations/{cid}/messages", params={"before_seq": 3}).json()["messages"]
    assert [m["reactions"] for m in back] == [[{"emoji": THUMBS, "count": 1, "me": False}],
                                              [{"emoji": PARTY, "count": 2, "me": True}]]
    assert [m["reactions"] for m in b.ws().sync(cid)] == [[{"emoji": THUMBS, "count": 1, "me": True}],
                                                          [{"emoji": PARTY, "count": 2, "me": True}]]
    conv = next(c for c in b.get("/api/conversations").json() if c["conversation_id"] == cid)
    assert conv["last_message"]["reactions"] == [{"emoji": PARTY, "count": 2, "me": True}]
    results = a.get("/api/search", params={"q": "rhs", "conversation_id": cid}).json()["results"]
    assert {m["message_id"]: m["reactions"] for m in results} == {
        second: [{"emoji": PARTY, "count": 2, "me": True}], first: [{"emoji": THUMBS, "count": 1, "me": False}]}


def test_reaction_racing_its_messages_own_persistence(stack: Stack, db_reader) -> None:
    """Acked and pushed, not yet stored: the message is found in Redis' index, the reaction
    is stored against its id and shows in sync at once, and in history once the row lands."""
    a, b, sa, cid = chat_with_stored_history(db_reader, 1, "rrp")
    sb = b.ws()
    stack.persist_worker.kill()
    try:
        mid = sa.ack_for(sa.send_message(cid, "react before my row exists"))["message_id"]
        assert put(b, mid, THUMBS).status_code == 204
        assert reaction_push(sa)["message_id"] == mid
        assert db_reader.stored(cid)[-1][1] != mid  # really not stored yet
        assert sb.sync(cid, after_seq=1)[0]["reactions"] == [{"emoji": THUMBS, "count": 1, "me": True}]
    finally:
        stack.persist_worker.start()
    db_reader.wait_stored(cid, 2, timeout=60)
    assert reactions_in_history(a, cid, mid) == [{"emoji": THUMBS, "count": 1, "me": False}]


def test_a_blocked_user_cannot_react_in_the_blockers_one_to_one() -> None:
    a, b = register("rbl"), register("rbl")
    cid = single_cid(a, b)
    sa, sb = a.ws(), b.ws()
    mid = sb.ack_for(sb.send_message(cid, "before the block"))["message_id"]
    assert b.post(f"/api/users/{a.id}/block").status_code == 204
    r = put(a, mid, THUMBS)
    assert (r.status_code, r.json()["code"]) == (403, "blocked"), r.text
    assert refused(sa, {"type": "react", "message_id": mid, "emoji": THUMBS, "op": "add"}) == "blocked"
    assert no_reaction_push(sb, 0.3)
    assert put(b, mid, PARTY).status_code == 204  # the blocker still may, as they may still send
    assert b.delete(f"/api/users/{a.id}/block").status_code == 204
    assert put(a, mid, THUMBS).status_code == 204
