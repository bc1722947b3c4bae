"""Group chat end to end on the live stack: REST, membership rules, small-group
routing in logic, and the large-group path (the test env sets the threshold to 50
members and the chunk to 100, so a 120-member group takes the Celery fan-out)."""

from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.client import User, bulk_users, register

pytestmark = pytest.mark.usefixtures("stack")


def create_group(owner: User, members: list[User], name: str = "team") -> dict[str, Any]:
    r = owner.post("/api/groups", {"name": name, "member_ids": [m.id for m in members]})
    assert r.status_code == 201, r.text
    return r.json()


@pytest.fixture
def trio() -> tuple[User, User, User]:
    return register("own"), register("mem"), register("mem")


def test_create_list_detail_and_members(trio: tuple[User, User, User]) -> None:
    owner, m1, m2 = trio
    g = create_group(owner, [m1, m2, m1])  # duplicates ignored
    assert g["owner_id"] == owner.id and g["member_count"] == 3
    assert g["conversation_id"] == f"g_{g['id']}" and g["name"] == "team" and g["created_at"]
    assert [x["id"] for x in m1.get("/api/groups").json()] == [g["id"]]
    assert m2.get(f"/api/groups/{g['id']}").json() == g
    members = m1.get(f"/api/groups/{g['id']}/members").json()
    assert {(x["user_id"], x["role"]) for x in members["results"]} == {
        (owner.id, "owner"), (m1.id, "member"), (m2.id, "member")}
    assert members["next"] is None


def test_members_are_cursor_paginated(db_reader) -> None:
    owner = register("pag")
    with db_reader.access():
        others = bulk_users(250, "pag")
    g = create_group(owner, others)
    seen: list[int] = []
    url = f"/api/groups/{g['id']}/members"
    page = owner.get(url).json()
    while True:
        seen += [x["user_id"] for x in page["results"]]
        if not page["next"]:
            break
        next_url = urlsplit(page["next"])
        page = owner.get(f"{next_url.path}?{next_url.query}").json()
    assert sorted(seen) == sorted([owner.id] + [o.id for o in others]) and len(seen) == 251


@pytest.mark.parametrize("body", [{"name": "", "member_ids": []}, {"name": "x" * 65, "member_ids": []},
                                  {"name": "ok", "member_ids": [999999999]}, {"name": "ok", "member_ids": "1"},
                                  {"name": "ok", "member_ids": list(range(1, 1002))}, {"member_ids": []}, [1]])
def test_bad_group_bodies_give_400(body: Any) -> None:
    assert register("bad").post("/api/groups", body).status_code == 400


def test_outsider_cannot_see_or_send(trio: tuple[User, User, User]) -> None:
    owner, m1, _ = trio
    g = create_group(owner, [m1])
    eve = register("eve")
    assert eve.get(f"/api/groups/{g['id']}").status_code == 403
    assert eve.get(f"/api/groups/{g['id']}/members").status_code == 403
    assert eve.get(f"/api/conversations/{g['conversation_id']}/messages").status_code == 403
    assert eve.post(f"/api/groups/{g['id']}/members", {"user_ids": [eve.id]}).status_code == 403
    s = eve.ws()
    assert s.ack_for(s.send_message(g["conversation_id"], "hi"))["code"] == "not_member"
    assert register("x").get("/api/groups/999999999").status_code == 404


def test_small_group_delivers_to_every_online_member_and_device(trio: tuple[User, User, User]) -> None:
    owner, m1, m2 = trio
    g = create_group(owner, [m1, m2])
    cid = g["conversation_id"]
    so, so2, s1, s2a, s2b = owner.ws(), owner.ws("tgw2"), m1.ws("tgw2"), m2.ws(), m2.ws("tgw2")
    ack = so.ack_for(so.send_message(cid, "hello team"))
    assert ack["type"] == "ack" and ack["seq"] == 1
    for sock in (so2, s1, s2a, s2b):
        msg = sock.message()
        assert (msg["message_id"], msg["body"], msg["sender_id"]) == (ack["message_id"], "hello team", owner.id)
    reply = s1.ack_for(s1.send_message(cid, "hi boss"))
    assert so.message()["message_id"] == reply["message_id"]


def test_removed_member_neither_sends_receives_nor_reads(trio: tuple[User, User, User]) -> None:
    owner, m1, m2 = trio
    g = create_group(owner, [m1, m2])
    cid = g["conversation_id"]
    so, s2 = owner.ws(), m2.ws()
    so.ack_for(so.send_message(cid, "before"))
    s2.message()
    assert owner.delete(f"/api/groups/{g['id']}/members/{m2.id}").status_code == 204
    so.ack_for(so.send_message(cid, "after"))
    assert not [f for f in s2.quiet(1.0) if f["type"] == "message"]
    assert s2.ack_for(s2.send_message(cid, "still here?"))["code"] == "not_member"
    assert m2.get(f"/api/conversations/{cid}/messages").status_code == 403
    assert s2.request({"type": "sync", "conversation_id": cid, "after_seq": 0}, "sync_result")["code"] == "not_member"
    assert g["id"] not in [x["id"] for x in m2.get("/api/groups").json()]


def test_member_can_leave_but_owner_cannot(trio: tuple[User, User, User]) -> None:
    owner, m1, _ = trio
    g = create_group(owner, [m1])
    assert m1.delete(f"/api/groups/{g['id']}/members/{m1.id}").status_code == 204
    assert owner.delete(f"/api/groups/{g['id']}/members/{owner.id}").status_code == 409
    assert owner.get(f"/api/groups/{g['id']}").json()["member_count"] == 1


def test_late_joiner_history_starts_at_join(trio: tuple[User, User, User]) -> None:
    owner, m1, late = trio
    g = create_group(owner, [m1])
    cid = g["conversation_id"]
    so = owner.ws()
    for i in range(3):
        so.ack_for(so.send_message(cid, f"old {i}"))
    r = owner.post(f"/api/groups/{g['id']}/members", {"user_ids": [late.id, late.id]})
    assert r.status_code == 200 and r.json() == {"added": [late.id], "member_count": 3}
    ack = so.ack_for(so.send_message(cid, "welcome"))
    sl = late.ws()
    assert [m["seq"] for m in sl.sync(cid, after_seq=0)] == [ack["seq"]] == [4]
    assert [m["body"] for m in late.get(f"/api/conversations/{cid}/messages").json()["messages"]] == ["welcome"]
    conv = next(c for c in late.get("/api/conversations").json() if c["conversation_id"] == cid)
    assert (conv["kind"], conv["group_id"], conv["max_seq"], conv["read_seq"], conv["unread"]) == (
        "group", g["id"], 4, 3, 1)


def test_roles_and_mute(trio: tuple[User, User, User]) -> None:
    owner, admin, member = trio
    g = create_group(owner, [admin, member])
    cid = g["conversation_id"]
    gid = g["id"]
    url = f"/api/groups/{gid}/members"
    newcomer = register("new")
    assert member.post(url, {"user_ids": [newcomer.id]}).status_code == 403
    assert owner.patch(f"/api/groups/{gid}/members/{admin.id}", {"role": "admin"}).json()["role"] == "admin"
    assert admin.patch(f"/api/groups/{gid}/members/{member.id}", {"role": "admin"}).status_code == 403
    assert admin.post(url, {"user_ids": [newcomer.id]}).status_code == 200
    assert admin.patch(f"/api/groups/{gid}/members/{member.id}", {"muted": True}).json()["muted"] is True
    assert admin.patch(f"/api/groups/{gid}/members/{owner.id}", {"muted": True}).status_code == 403
    sm = member.ws()
    assert sm.ack_for(sm.send_message(cid, "can I talk?"))["code"] == "forbidden"
    owner.patch(f"/api/groups/{gid}/members/{member.id}", {"muted": False})
    assert sm.ack_for(sm.send_message(cid, "thanks"))["type"] == "ack"
    assert admin.delete(f"/api/groups/{g['id']}").status_code == 403


def test_dissolved_group_accepts_no_sends(trio: tuple[User, User, User]) -> None:
    owner, m1, _ = trio
    g = create_group(owner, [m1])
    s1 = m1.ws()
    s1.ack_for(s1.send_message(g["conversation_id"], "last words"))
    assert m1.delete(f"/api/groups/{g['id']}").status_code == 403
    assert owner.delete(f"/api/groups/{g['id']}").status_code == 204
    assert s1.ack_for(s1.send_message(g["conversation_id"], "hello?"))["code"] == "not_member"
    assert owner.get(f"/api/groups/{g['id']}").status_code == 404


def test_group_read_state_and_receipts_stay_with_the_reader(trio: tuple[User, User, User]) -> None:
    owner, m1, _ = trio
    g = create_group(owner, [m1])
    cid = g["conversation_id"]
    so, s1a, s1b = owner.ws(), m1.ws(), m1.ws()
    for i in range(4):
        so.ack_for(so.send_message(cid, f"n{i}"))
    conv = next(c for c in m1.get("/api/conversations").json() if c["conversation_id"] == cid)
    assert conv["unread"] == 4
    s1a.send({"type": "read", "conversation_id": cid, "seq": 4})
    assert s1b.wait_for(lambda f: f["type"] == "read")["seq"] == 4
    assert not [f for f in so.quiet(0.8) if f["type"] == "read"]  # no per-member broadcast in groups
    conv = next(c for c in m1.get("/api/conversations").json() if c["conversation_id"] == cid)
    assert (conv["read_seq"], conv["unread"]) == (4, 0)


def test_large_group_fans_out_to_online_members_exactly_once(db_reader) -> None:
    owner = register("big")
    with db_reader.access():
        members = bulk_users(119, "big")
    g = create_group(owner, members)
    assert g["member_count"] == 120  # > GOCHAT_LARGE_GROUP_THRESHOLD (50): chunked Celery fan-out
    cid = g["conversation_id"]
    online = members[:40]
    socks = [m.ws("tgw1" if i % 2 else "tgw2") for i, m in enumerate(online)]
    so = owner.ws()
    ack = so.ack_for(so.send_message(cid, "to everyone"))
    for sock in socks:
        assert sock.message()["message_id"] == ack["message_id"]
    for sock in socks[:10]:
        assert not [f for f in sock.quiet(0.2) if f["type"] == "message"]  # exactly once
    offline = members[100]
    assert [m["message_id"] for m in offline.ws().sync(cid)] == [ack["message_id"]]


def test_rerun_chunk_task_duplicates_a_push_but_loses_nothing(db_reader) -> None:
    import orjson

    from fanout.tasks import deliver_chunk
    from gochat_project.infra import kafka

    owner = register("rerun")
    with db_reader.access():
        members = bulk_users(60, "rerun")
    g = create_group(owner, members)
    sock = members[5].ws()
    so = owner.ws()
    ack = so.ack_for(so.send_message(g["conversation_id"], "once"))
    first = sock.message()
    # What a redelivered chunk task does: the same frame to the same members, again.
    frame = orjson.dumps({"type": "message", "message": first}).decode()
    deliver_chunk.apply_async(args=[frame, [m.id for m in members]], queue=kafka.fanout_topic())
    again = sock.message(timeout=20)
    assert again["message_id"] == first["message_id"] == ack["message_id"]


def test_member_list_cache_follows_membership_changes(trio: tuple[User, User, User]) -> None:
    owner, m1, m2 = trio
    g = create_group(owner, [m1])
    cid = g["conversation_id"]
    so = owner.ws()
    so.ack_for(so.send_message(cid, "warm the cache"))
    s2 = m2.ws()
    owner.post(f"/api/groups/{g['id']}/members", {"user_ids": [m2.id]})
    ack = so.ack_for(so.send_message(cid, "you are in"))
    assert s2.message()["message_id"] == ack["message_id"]


def test_owner_and_admin_rename_and_members_see_the_new_name(trio: tuple[User, User, User]) -> None:
    owner, admin, member = trio
    g = create_group(owner, [admin, member])
    assert owner.patch(f"/api/groups/{g['id']}/members/{admin.id}", {"role": "admin"}).status_code == 200
    r = owner.patch(f"/api/groups/{g['id']}", {"name": "  Renamed 🎉  "})
    assert r.status_code == 200, r.text
    assert r.json() == {**g, "name": "Renamed 🎉"}  # trimmed, like the name at creation
    assert admin.patch(f"/api/groups/{g['id']}", {"name": "By the admin"}).json()["name"] == "By the admin"
    assert member.get(f"/api/groups/{g['id']}").json()["name"] == "By the admin"
    assert {x["id"]: x["name"] for x in member.get("/api/groups").json()}[g["id"]] == "By the admin"
    # The conversation list names the group by id; the name is the group's (above).
    s = member.ws()
    assert s.ack_for(s.send_message(g["conversation_id"], "after the rename"))["type"] == "ack"
    listed = [c for c in member.get("/api/conversations").json() if c["conversation_id"] == g["conversation_id"]]
    assert listed and listed[0]["group_id"] == g["id"]


def test_rename_by_member_outsider_or_removed_member_is_refused(trio: tuple[User, User, User]) -> None:
    owner, member, gone = trio
    g = create_group(owner, [member, gone])
    assert owner.delete(f"/api/groups/{g['id']}/members/{gone.id}").status_code == 204
    for user in (member, register("eve"), gone):
        r = user.patch(f"/api/groups/{g['id']}", {"name": "mine now"})
        assert r.status_code == 403 and "detail" in r.json(), r.text
    assert owner.get(f"/api/groups/{g['id']}").json()["name"] == "team"


def test_rename_of_a_dissolved_or_unknown_group_is_404(trio: tuple[User, User, User]) -> None:
    owner, member, _ = trio
    g = create_group(owner, [member])
    assert owner.delete(f"/api/groups/{g['id']}").status_code == 204
    assert owner.patch(f"/api/groups/{g['id']}", {"name": "ghost"}).status_code == 404
    assert owner.patch("/api/groups/999999999", {"name": "ghost"}).status_code == 404
    assert owner.patch("/api/groups/abc", {"name": "ghost"}).status_code == 404


@pytest.mark.parametrize("body", [{"name": ""}, {"name": "   "}, {"name": "x" * 65}, {"name": 5}, {"name": None},
                                  {"name": ["team"]}, {"name": True}, [1], "text"])
def test_bad_rename_bodies_give_400(trio: tuple[User, User, User], body: Any) -> None:
    owner, member, _ = trio
    g = create_group(owner, [member])
    r = owner.patch(f"/api/groups/{g['id']}", body)
    assert r.status_code == 400, r.text
    if isinstance(body, dict):
        assert "name" in r.json(), r.text
    assert owner.get(f"/api/groups/{g['id']}").json()["name"] == "team"


def test_patch_without_a_name_changes_nothing_but_still_needs_the_role(trio: tuple[User, User, User]) -> None:
    owner, member, _ = trio
    g = create_group(owner, [member])
    r = owner.patch(f"/api/groups/{g['id']}", {})
    assert r.status_code == 200 and r.json() == g, r.text
    assert member.patch(f"/api/groups/{g['id']}", {}).status_code == 403


def test_rename_ignores_other_fields_and_oversized_bodies_get_413(trio: tuple[User, User, User]) -> None:
    owner, member, _ = trio
    g = create_group(owner, [member])
    r = owner.patch(f"/api/groups/{g['id']}", {"name": "x" * 64, "owner_id": member.id, "member_count": 9})
    assert r.status_code == 200 and r.json() == {**g, "name": "x" * 64}, r.text
    assert owner.patch(f"/api/groups/{g['id']}", {"name": "y" * 70_000}).status_code == 413
    assert owner.patch(f"/api/groups/{g['id']}", {"name": "ok"}).status_code == 200
