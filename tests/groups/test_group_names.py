"""Group names where clients need them (docs/protocol.md, "Profile and groups"): in the
conversation list, and pushed to every member's devices on a rename (`group_updated`)."""

from typing import Any

import pytest

from tests.client import Socket, User, bulk_users, register, single_cid
from tests.conftest import Db

pytestmark = pytest.mark.usefixtures("stack")


def create_group(owner: User, members: list[User], name: str) -> dict[str, Any]:
    r = owner.post("/api/groups", {"name": name, "member_ids": [m.id for m in members]})
    assert r.status_code == 201, r.text
    return r.json()


def renamed(sock: Socket, group: dict[str, Any], timeout: float = 10.0) -> dict[str, Any]:
    return sock.wait_for(lambda f: f["type"] == "group_updated" and f["group_id"] == group["id"], timeout)


def test_conversation_list_names_groups_and_1to1_peers(db_reader: Db) -> None:
    owner, peer = register("gn"), register("gn")
    assert peer.patch("/api/users/me", {"nickname": "Peer Person"}).status_code == 200
    group = create_group(owner, [peer], "book club")
    sock = owner.ws()
    hi = sock.ack_for(sock.send_message(single_cid(owner, peer), "hi"))
    note = sock.ack_for(sock.send_message(owner_self := f"s_{owner.id}_{owner.id}", "note"))
    db_reader.wait_messages([int(hi["message_id"]), int(note["message_id"])])  # a 1:1 is listed once stored
    items = {c["conversation_id"]: c for c in owner.get("/api/conversations").json()}
    assert items[group["conversation_id"]]["group_name"] == "book club"
    assert items[single_cid(owner, peer)]["peer_nickname"] == "Peer Person"
    assert items[owner_self]["peer_nickname"] == owner.username  # a blank nickname shows the username
    assert "group_name" not in items[single_cid(owner, peer)] and "peer_nickname" not in items[group["conversation_id"]]
    assert owner.patch(f"/api/groups/{group['id']}", {"name": "book club 2"}).status_code == 200
    items = {c["conversation_id"]: c for c in peer.get("/api/conversations").json()}
    assert items[group["conversation_id"]]["group_name"] == "book club 2"


def test_rename_is_pushed_to_every_member_device_and_no_one_else() -> None:
    owner, member, outsider = register("gr"), register("gr"), register("gr")
    group = create_group(owner, [member], "before")
    owner_sock, phone, laptop, other = owner.ws("tgw1"), member.ws("tgw1"), member.ws("tgw2"), outsider.ws("tgw2")
    r = owner.patch(f"/api/groups/{group['id']}", {"name": "after"})
    assert r.status_code == 200 and r.json()["name"] == "after"
    expected = {"type": "group_updated", "group_id": group["id"], "conversation_id": group["conversation_id"],
                "name": "after"}
    for sock in (owner_sock, phone, laptop):  # the renaming owner's own socket too
        assert renamed(sock, group) == expected
    assert [f for f in other.quiet(1.0) if f["type"] == "group_updated"] == []


def test_a_refused_rename_pushes_nothing() -> None:
    owner, member = register("gr"), register("gr")
    group = create_group(owner, [member], "stays")
    sock = owner.ws()
    assert member.patch(f"/api/groups/{group['id']}", {"name": "mine now"}).status_code == 403
    assert [f for f in sock.quiet(1.0) if f["type"] == "group_updated"] == []


def test_rename_of_a_large_group_reaches_members_through_the_fan_out(db_reader: Any) -> None:
    owner = register("grbig")
    with db_reader.access():
        members = bulk_users(60, "grbig")  # > GOCHAT_LARGE_GROUP_THRESHOLD (50 in the tests)
    group = create_group(owner, members, "big")
    socks = [m.ws("tgw1" if i % 2 else "tgw2") for i, m in enumerate(members[:6])]
    assert owner.patch(f"/api/groups/{group['id']}", {"name": "bigger"}).status_code == 200
    for sock in socks:
        assert renamed(sock, group)["name"] == "bigger"
