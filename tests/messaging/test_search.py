"""`GET /api/search` on the live stack: the index is fed by the persistence workers, so
each test waits until every message it sent is stored before it searches. Persistence
writes the index row inside the transaction that stores the message, and a result is
returned only with its committed `messages` row, so "stored" is "searchable"; waiting
for one message to be found is not enough, because the others may be in a later batch.
Every test uses new users: their conversations are theirs alone, so results never mix
with other tests' messages."""

from typing import Any

import pytest
import requests

from messaging.conversations import parse_conversation_id
from tests.client import Socket, User, register, single_cid
from tests.conftest import Db
from tests.stack import Stack

pytestmark = pytest.mark.usefixtures("stack")


def search(user: User, q: str, **params: Any) -> requests.Response:
    return user.get("/api/search", params={"q": q, **params})


def found(user: User, q: str, **params: Any) -> list[str]:
    r = search(user, q, **params)
    assert r.status_code == 200, r.text
    return [m["body"] for m in r.json()["results"]]


def send_all(db: Db, sock: Socket, cid: str, bodies: list[str]) -> list[dict[str, Any]]:
    """Send, and return the acks once every message is stored (and so searchable)."""
    acks = [sock.ack_for(sock.send_message(cid, body)) for body in bodies]
    db.wait_messages([int(ack["message_id"]) for ack in acks])
    return acks


def test_cjk_substrings_and_case_insensitive_words(db_reader: Db) -> None:
    a, b = register("se"), register("se")
    cid = single_cid(a, b)
    sa = a.ws()
    send_all(db_reader, sa, cid, ["我们明天见面吧", "Hello World, see you Tomorrow", "明日会いましょう", "明天"])
    assert found(b, "明天见") == ["我们明天见面吧"]  # a substring, not the shorter 明天 message
    assert found(b, "会いま") == ["明日会いましょう"]  # Japanese
    assert found(b, "明天") == ["明天", "我们明天见面吧"]  # newest first
    assert found(b, "hello") == found(b, "WORLD") == found(b, "tomorrow") == ["Hello World, see you Tomorrow"]
    assert found(b, "hello tomorrow") == ["Hello World, see you Tomorrow"]  # every word must match
    assert found(b, "hello 明天") == []
    assert found(b, "goodbye") == []
    assert found(a, "明天见") == ["我们明天见面吧"]  # the sender's own messages too
    # A result is the message object history returns.
    history = {m["message_id"]: m for m in b.get(f"/api/conversations/{cid}/messages").json()["messages"]}
    result = search(b, "明天见").json()["results"][0]
    assert result == history[result["message_id"]]


def test_query_syntax_is_taken_literally(db_reader: Db) -> None:
    a, b = register("sq"), register("sq")
    sa = a.ws()
    send_all(db_reader, sa, single_cid(a, b), ['quote "me" (now) -minus +plus *star OR'])
    for q in ['"me"', "(now)", "-minus", "+plus", "*star", 'a"b\\', "OR", "(", ")", "*D-", "\\"]:
        assert search(b, q).status_code == 200, q
    assert found(b, "nothing OR quote") == []  # OR is a word here, not an operator


def test_foreign_conversations_are_refused_and_never_found(db_reader: Db) -> None:
    a, b, eve = register("sf"), register("sf"), register("sf")
    cid = single_cid(a, b)
    owner = register("sf")
    g = owner.post("/api/groups", {"name": "secret", "member_ids": [a.id]}).json()
    sa = a.ws()
    send_all(db_reader, sa, cid, ["classified briefing"])
    send_all(db_reader, sa, g["conversation_id"], ["classified roster"])
    assert found(eve, "classified") == []
    assert found(b, "classified") == ["classified briefing"]  # not the group b is not in
    for foreign in (cid, g["conversation_id"]):
        r = search(eve, "classified", conversation_id=foreign)
        assert r.status_code == 403, r.text
    assert search(b, "classified", conversation_id=g["conversation_id"]).status_code == 403
    assert found(a, "classified", conversation_id=cid) == ["classified briefing"]
    for malformed in ("x_1", "g_0", ""):
        assert search(a, "classified", conversation_id=malformed).status_code == 400, malformed
    assert search(a, "classified", conversation_id=f"s_{b.id}_{a.id}" if b.id > a.id
                  else f"s_{a.id}_{b.id}").status_code == 403  # the larger id first: nobody's conversation


def test_group_history_before_join_is_not_found(db_reader: Db) -> None:
    owner, early, late = register("sg"), register("sg"), register("sg")
    g = owner.post("/api/groups", {"name": "history", "member_ids": [early.id]}).json()
    gcid = g["conversation_id"]
    so = owner.ws()
    send_all(db_reader, so, gcid, ["rendezvous before the join", "会議は明日です before"])
    assert owner.post(f"/api/groups/{g['id']}/members", {"user_ids": [late.id]}).status_code == 200
    send_all(db_reader, so, gcid, ["rendezvous after the join"])
    assert found(late, "rendezvous") == ["rendezvous after the join"]
    assert found(late, "rendezvous", conversation_id=gcid) == ["rendezvous after the join"]
    assert found(late, "会議") == []
    assert found(early, "rendezvous") == ["rendezvous after the join", "rendezvous before the join"]
    # After leaving, nothing.
    assert early.delete(f"/api/groups/{g['id']}/members/{early.id}").status_code == 204
    assert found(early, "rendezvous") == []
    assert search(early, "rendezvous", conversation_id=gcid).status_code == 403


def test_recalled_and_deleted_for_me_are_not_found(db_reader: Db) -> None:
    a, b = register("sr"), register("sr")
    cid = single_cid(a, b)
    sa = a.ws()
    recalled, hidden, _ = send_all(db_reader, sa, cid, ["pineapple recalled", "pineapple hidden", "pineapple kept"])
    assert a.post(f"/api/messages/{recalled['message_id']}/recall").status_code == 204
    assert b.delete(f"/api/messages/{hidden['message_id']}").status_code == 204
    assert found(b, "pineapple") == ["pineapple kept"]
    assert found(a, "pineapple") == ["pineapple kept", "pineapple hidden"]  # hidden for b only
    assert found(a, "recalled") == []


def test_search_after_a_recall_that_raced_its_own_persistence(stack: Stack, db_reader) -> None:
    a, b = register("sx"), register("sx")
    cid = single_cid(a, b)
    sa = a.ws()
    send_all(db_reader, sa, cid, ["quince first"])
    stack.persist_worker.kill()
    try:
        gone = sa.ack_for(sa.send_message(cid, "quince recalled before stored"))
        assert a.post(f"/api/messages/{gone['message_id']}/recall").status_code == 204
        after = sa.ack_for(sa.send_message(cid, "quince after"))
    finally:
        stack.persist_worker.start()
    db_reader.wait_stored(cid, 3)
    assert found(b, "quince") == ["quince after", "quince first"]
    assert after["seq"] == gone["seq"] + 1


def test_query_and_limit_bounds() -> None:
    a = register("sb")
    assert a.get("/api/search").status_code == 400  # no q
    for q in ("", "   ", "x" * 101):
        assert search(a, q).status_code == 400, repr(q)
    assert search(a, "x").status_code == 200
    assert search(a, "字" * 100).status_code == 200
    for limit in (0, 51, "many"):
        assert search(a, "x", limit=limit).status_code == 400, limit
    assert search(a, "x", limit=50).status_code == 200
    assert search(a, "x", cursor="not-a-cursor").status_code == 404
    assert search(a, "x", cursor="Tk_\x00z").status_code == 404  # a NUL is a bad cursor too, not a 400
    assert requests.get(search(a, "x").url).status_code == 401  # no token


def test_limit_and_cursor_page_newest_first(db_reader: Db) -> None:
    a, b = register("sp"), register("sp")
    cid = single_cid(a, b)
    sa = a.ws()
    acks = send_all(db_reader, sa, cid, [f"mango number {i}" for i in range(5)] + ["other fruit"])
    first = search(b, "mango", limit=2).json()
    assert [m["body"] for m in first["results"]] == ["mango number 4", "mango number 3"]
    assert first["next"].startswith("http://") and "limit=2" in first["next"] and "q=mango" in first["next"]
    second = requests.get(first["next"], headers=b.headers, timeout=10).json()
    assert [m["body"] for m in second["results"]] == ["mango number 2", "mango number 1"]
    third = requests.get(second["next"], headers=b.headers, timeout=10).json()
    assert ([m["body"] for m in third["results"]], third["next"]) == (["mango number 0"], None)
    ids = [m["message_id"] for page in (first, second, third) for m in page["results"]]
    assert ids == [ack["message_id"] for ack in reversed(acks[:5])]
    assert search(b, "mango").json()["next"] is None  # the default limit (20) holds all five


def test_an_edit_reindexes_the_current_body(db_reader) -> None:
    """What the edit feature will do once the new body is stored: search_index_replace."""
    from messaging import search as search_index
    from messaging.models import Message

    a, b = register("se"), register("se")
    cid = single_cid(a, b)
    sa = a.ws()
    ack = send_all(db_reader, sa, cid, ["draft with a typo teh"])[0]
    with db_reader.access():
        Message.objects.filter(message_id=int(ack["message_id"])).update(body="fixed: the 最终版本")
        search_index.search_index_replace(message_id=int(ack["message_id"]), conversation_id=cid, seq=ack["seq"],
                                          kind="text", body="fixed: the 最终版本")
    assert found(b, "teh") == []
    assert found(b, "最终") == found(b, "FIXED") == ["fixed: the 最终版本"]


def test_rebuild_command_restores_a_lost_or_stale_index(db_reader) -> None:
    from django.core.management import call_command

    from messaging import search as search_index

    a, b = register("si"), register("si")
    cid = single_cid(a, b)
    sa = a.ws()
    kept, recalled = send_all(db_reader, sa, cid, ["nectarine kept 油桃", "nectarine recalled"])
    assert a.post(f"/api/messages/{recalled['message_id']}/recall").status_code == 204
    with db_reader.access():
        # A stale index: the kept message lost, the recalled one back.
        search_index.search_index_remove(message_ids=[int(kept["message_id"])])
        search_index.search_index_replace(message_id=int(recalled["message_id"]), conversation_id=cid,
                                          seq=recalled["seq"], kind="text", body="nectarine stale")
    assert found(b, "nectarine") == []
    with db_reader.access():
        call_command("rebuild_search_index")
        cursor_count = _indexed(cid)
    assert cursor_count == 1  # the recalled message's row is gone
    assert found(b, "油桃") == found(b, "nectarine") == ["nectarine kept 油桃"]
    with db_reader.access():
        call_command("rebuild_search_index", "--truncate")
    assert found(b, "nectarine") == ["nectarine kept 油桃"]


def _indexed(cid: str) -> int:
    from django.db import connection

    from messaging import search as search_index

    with connection.cursor() as cursor:
        cursor.execute(f"SELECT COUNT(*) FROM {search_index.SEARCH_TABLE} WHERE conversation_id = %s", [cid])
        return int(cursor.fetchone()[0])


@pytest.mark.parametrize(("term_first_above", "term_first_rows"), [(0, 500), (0, 2), (10 ** 9, 500)],
                         ids=["term-first", "term-first-then-scoped", "scoped"])
def test_both_query_plans_find_the_same(db_reader, monkeypatch: pytest.MonkeyPatch, term_first_above: int,
                                        term_first_rows: int) -> None:
    """Callers who can read many messages are searched term-first (messaging/search.py):
    the same answer as the scoped plan, foreign, pre-join and hidden messages left out."""
    from messaging import search as search_index

    owner, late, other = register("sq"), register("sq"), register("sq")
    g = owner.post("/api/groups", {"name": "plans", "member_ids": [other.id]}).json()
    so, sx = owner.ws(), other.ws()
    send_all(db_reader, so, g["conversation_id"], ["tamarind before join"])
    assert owner.post(f"/api/groups/{g['id']}/members", {"user_ids": [late.id]}).status_code == 200
    send_all(db_reader, so, g["conversation_id"], ["tamarind after join 1"])
    send_all(db_reader, sx, single_cid(other, owner), ["tamarind not for late"])
    hidden = send_all(db_reader, so, g["conversation_id"], ["tamarind hidden by late"])[0]
    send_all(db_reader, so, single_cid(late, owner), ["tamarind 1:1 a", "tamarind 1:1 b"])
    assert late.delete(f"/api/messages/{hidden['message_id']}").status_code == 204
    monkeypatch.setattr(search_index, "TERM_FIRST_ABOVE", term_first_above)
    monkeypatch.setattr(search_index, "TERM_FIRST_ROWS", term_first_rows)
    with db_reader.access():
        rows, more = search_index.messages_search(user_id=late.id, query="TAMARIND", limit=2)
        assert ([m.body for m in rows], more) == (["tamarind 1:1 b", "tamarind 1:1 a"], True)
        rows, more = search_index.messages_search(user_id=late.id, query="tamarind", limit=2,
                                                  before_message_id=rows[-1].message_id)
        assert ([m.body for m in rows], more) == (["tamarind after join 1"], False)
        ref = parse_conversation_id(g["conversation_id"])
        rows, _ = search_index.messages_search(user_id=late.id, query="tamarind", ref=ref)
        assert [m.body for m in rows] == ["tamarind after join 1"]
