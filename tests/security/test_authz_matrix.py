"""The authorization matrix on the live stack: every REST endpoint and WebSocket frame
type against every kind of caller, with the answer each must get.

Roles (columns): anonymous (no token), outsider (a user unrelated to the group),
member, muted (a member muted by the owner), admin, owner, banned (a member whose
account a moderator deactivated; their tokens were issued before the ban) and staff
(is_staff, not a member).

A banned user's access token is refused on REST with 401 `user_inactive`
(simplejwt checks is_active on every request, so the token is dead at once, not at
its expiry), like their login and refresh (401); their sockets close with 4403."""

import contextlib
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests
from websockets.exceptions import ConnectionClosed

from tests.client import PASSWORD, Socket, User, access_token, bulk_users, register, single_cid
from tests.stack import gateway_url

pytestmark = pytest.mark.usefixtures("stack")

ROLES = ("anonymous", "outsider", "member", "muted", "admin", "owner", "banned", "staff")
MEMBERS = ("member", "muted", "admin", "owner")


@dataclass
class World:
    users: dict[str, User]  # every role but anonymous
    group: dict[str, Any]  # the shared group: owner, admin, member, muted, banned, target
    target: User  # a plain member acted upon (removed, muted, promoted)
    pair: tuple[User, User]  # two other users and their 1:1
    blocker: Any
    owner_messages: dict[str, str] = field(default_factory=dict)
    uploads: dict[str, str] = field(default_factory=dict)

    def owner_message(self, row: str) -> str:
        """A message the owner sent to the group, one per row (sent at the row's first
        cell, so the row's recall runs well inside the recall window)."""
        if row not in self.owner_messages:
            sock = self.users["owner"].ws()
            ack = sock.ack_for(sock.send_message(self.group["conversation_id"], f"for {row}"))
            sock.close()
            self.owner_messages[row] = ack["message_id"]
        return self.owner_messages[row]

    def sent_upload(self, where: str) -> str:
        """The id of an image the owner sent to the group (`group`), or the pair's first
        user to their own 1:1 (`pair`)."""
        if where not in self.uploads:
            sender, cid = ((self.users["owner"], self.group["conversation_id"]) if where == "group"
                           else (self.pair[0], single_cid(*self.pair)))
            r = requests.post(f"{gateway_url()}/api/uploads", files=_png_file(None), headers=sender.headers,
                              timeout=10)
            assert r.status_code == 201, r.text
            upload_id = r.json()["upload_id"]
            sock = sender.ws()
            cmid = sock.send_message(cid, "", kind="image", extra={"upload_id": upload_id})
            assert sock.ack_for(cmid)["type"] == "ack"
            sock.close()
            self.uploads[where] = upload_id
        return self.uploads[where]

    @property
    def gid(self) -> int:
        return self.group["id"]

    def refresh_for(self, user_id: int) -> str:
        """A fresh refresh token (rotation and logout blacklist the ones a cell uses)."""
        from rest_framework_simplejwt.tokens import RefreshToken

        from accounts.models import User as UserModel

        with self.blocker.unblock():
            return str(RefreshToken.for_user(UserModel.objects.get(pk=user_id)))


def _group(owner: User, admin: User, member: User, muted: User, banned: User, target: User,
           blocker: Any, *, banned_already: bool) -> dict[str, Any]:
    """A group with every role; the banned user is a member (added in MySQL when already banned)."""
    ids = [admin.id, member.id, muted.id, target.id] + ([] if banned_already else [banned.id])
    r = owner.post("/api/groups", {"name": "matrix", "member_ids": ids})
    assert r.status_code == 201, r.text
    g = r.json()
    assert owner.patch(f"/api/groups/{g['id']}/members/{admin.id}", {"role": "admin"}).status_code == 200
    assert owner.patch(f"/api/groups/{g['id']}/members/{muted.id}", {"muted": True}).status_code == 200
    if banned_already:
        from django.db.models import F

        from groups.models import Group, GroupMember
        from groups.selectors import group_cache_invalidate

        with blocker.unblock():
            GroupMember.objects.create(group_id=g["id"], user_id=banned.id, joined_seq=0)
            Group.objects.filter(pk=g["id"]).update(member_count=F("member_count") + 1)
            group_cache_invalidate(g["id"])
    return g


@pytest.fixture(scope="module")
def world(stack, django_db_blocker: Any) -> Iterator[World]:
    from accounts.models import User as UserModel
    from accounts.services import users_ban

    users = {role: register(f"mx{role[:3]}") for role in ROLES if role != "anonymous"}
    with django_db_blocker.unblock():
        target, a, b = bulk_users(3, "mxt")
        UserModel.objects.filter(pk=users["staff"].id).update(is_staff=True)
    g = _group(users["owner"], users["admin"], users["member"], users["muted"], users["banned"], target,
               django_db_blocker, banned_already=False)
    live = users["banned"].ws()
    with django_db_blocker.unblock():
        users_ban(user_ids=[users["banned"].id])
    assert live.closed_with(5) == 4403  # the ban reaches the banned user's live socket
    yield World(users, g, target, (a, b), django_db_blocker)


def caller(world: World, role: str) -> User:
    """The acting user; anonymous acts with the outsider's ids but sends no token."""
    return world.users["outsider" if role == "anonymous" else role]


def call(role: str, me: User, method: str, path: str, body: Any = None,
         files: dict[str, Any] | None = None) -> requests.Response:
    headers = {} if role == "anonymous" else me.headers
    return requests.request(method, gateway_url() + path, json=None if files else body, files=files,
                            headers=headers, timeout=10)


# --- REST ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Rest:
    name: str
    method: str
    path: str  # formatted with gid, gcid, pair, me, target, owner, admin, own1
    expect: tuple[int, ...]  # one status per role, in ROLES order
    body: Callable[["Ctx"], Any] | None = None
    fresh_group: bool = False  # the call changes the group: give it a group of its own
    files: Callable[["Ctx"], dict[str, Any]] | None = None  # a multipart body instead of JSON


@dataclass
class Ctx:
    world: World
    role: str
    me: User
    gid: int

    def fmt(self) -> dict[str, Any]:
        w = self.world
        return {"gid": self.gid, "gcid": f"g_{self.gid}", "pair": single_cid(*w.pair), "me": self.me.id,
                "target": w.target.id, "owner": w.users["owner"].id, "admin": w.users["admin"].id,
                "own1": single_cid(self.me, w.target)}


def _fresh_name(_: Ctx) -> dict[str, str]:
    return {"username": f"mxreg{uuid.uuid4().hex[:10]}", "password": PASSWORD}


def _login(c: Ctx) -> dict[str, str]:
    if c.role == "anonymous":
        return {"username": f"nobody{uuid.uuid4().hex[:8]}", "password": PASSWORD}
    return {"username": c.me.username, "password": PASSWORD}


def _own_refresh(c: Ctx) -> dict[str, str]:
    return {"refresh": c.world.refresh_for(c.me.id)}


def _png_file(_: Ctx | None) -> dict[str, Any]:
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 40, 40)).save(out, "PNG")
    return {"file": ("matrix.png", out.getvalue(), "image/png")}


def _send(cid_key: str) -> Callable[[Ctx], dict[str, str]]:
    def body(c: Ctx) -> dict[str, str]:
        return {"conversation_id": c.fmt()[cid_key], "client_msg_id": uuid.uuid4().hex, "body": "matrix"}
    return body


A, OK, NC, NO, CREATED, ACCEPTED, RESET = 401, 200, 204, 403, 201, 202, 205
#                 anonymous outsider member muted admin owner banned staff
AUTHED_200 = (A, OK, OK, OK, OK, OK, A, OK)
MEMBERS_200 = (A, NO, OK, OK, OK, OK, A, OK)  # staff may read a group's details and members

REST_MATRIX = [
    Rest("register", "POST", "/api/auth/register", (CREATED,) * 8, _fresh_name),
    Rest("login", "POST", "/api/auth/login", (A, OK, OK, OK, OK, OK, A, OK), _login),
    Rest("refresh", "POST", "/api/auth/refresh", (A, OK, OK, OK, OK, OK, A, OK),
         lambda c: {"refresh": "not-a-token"} if c.role == "anonymous" else _own_refresh(c)),
    Rest("logout-own", "POST", "/api/auth/logout", (A, RESET, RESET, RESET, RESET, RESET, A, RESET), _own_refresh),
    Rest("logout-anothers", "POST", "/api/auth/logout", (A, NO, NO, NO, NO, NO, A, NO),
         lambda c: {"refresh": c.world.refresh_for(c.world.target.id)}),
    Rest("me", "GET", "/api/users/me", AUTHED_200),
    Rest("profile-update", "PATCH", "/api/users/me", AUTHED_200, lambda c: {"nickname": f"mx {c.role}"}),
    # The same password again: the other rows still log in with PASSWORD. Every refresh
    # token of the caller is revoked; refresh_for mints the ones other rows use afterwards.
    Rest("password-change", "POST", "/api/auth/password", (A, NC, NC, NC, NC, NC, A, NC),
         lambda c: {"old_password": PASSWORD, "new_password": PASSWORD}),
    Rest("user-search", "GET", "/api/users?search=mx", AUTHED_200),
    Rest("user-detail", "GET", "/api/users/{target}", AUTHED_200),
    Rest("groups-list", "GET", "/api/groups", AUTHED_200),
    Rest("group-create", "POST", "/api/groups", (A, CREATED, CREATED, CREATED, CREATED, CREATED, A, CREATED),
         lambda c: {"name": "mine", "member_ids": [c.world.target.id]}),
    Rest("group-detail", "GET", "/api/groups/{gid}", MEMBERS_200),
    Rest("group-members", "GET", "/api/groups/{gid}/members", MEMBERS_200),
    Rest("group-rename", "PATCH", "/api/groups/{gid}", (A, NO, NO, NO, OK, OK, A, NO), lambda c: {"name": "renamed"},
         fresh_group=True),
    Rest("add-yourself", "POST", "/api/groups/{gid}/members", (A, NO, NO, NO, OK, OK, A, NO),
         lambda c: {"user_ids": [c.me.id]}, fresh_group=True),
    Rest("add-someone", "POST", "/api/groups/{gid}/members", (A, NO, NO, NO, OK, OK, A, NO),
         lambda c: {"user_ids": [c.world.pair[0].id]}, fresh_group=True),
    Rest("mute-member", "PATCH", "/api/groups/{gid}/members/{target}", (A, NO, NO, NO, OK, OK, A, NO),
         lambda c: {"muted": True}, fresh_group=True),
    Rest("promote-member", "PATCH", "/api/groups/{gid}/members/{target}", (A, NO, NO, NO, NO, OK, A, NO),
         lambda c: {"role": "admin"}, fresh_group=True),
    Rest("mute-admin", "PATCH", "/api/groups/{gid}/members/{admin}", (A, NO, NO, NO, NO, OK, A, NO),
         lambda c: {"muted": True}, fresh_group=True),
    Rest("mute-owner", "PATCH", "/api/groups/{gid}/members/{owner}", (A, NO, NO, NO, NO, NO, A, NO),
         lambda c: {"muted": True}, fresh_group=True),
    Rest("remove-member", "DELETE", "/api/groups/{gid}/members/{target}", (A, NO, NO, NO, NC, NC, A, NO),
         fresh_group=True),
    Rest("remove-owner", "DELETE", "/api/groups/{gid}/members/{owner}", (A, NO, NO, NO, NO, 409, A, NO),
         fresh_group=True),
    Rest("leave", "DELETE", "/api/groups/{gid}/members/{me}", (A, 404, NC, NC, NC, 409, A, 404), fresh_group=True),
    Rest("dissolve", "DELETE", "/api/groups/{gid}", (A, NO, NO, NO, NO, NC, A, NO), fresh_group=True),
    Rest("conversations", "GET", "/api/conversations", AUTHED_200),
    Rest("group-history", "GET", "/api/conversations/{gcid}/messages", (A, NO, OK, OK, OK, OK, A, NO)),
    Rest("another-pairs-history", "GET", "/api/conversations/{pair}/messages", (A, NO, NO, NO, NO, NO, A, NO)),
    Rest("own-1to1-history", "GET", "/api/conversations/{own1}/messages", AUTHED_200),
    Rest("group-read", "POST", "/api/conversations/{gcid}/read", (A, NO, NC, NC, NC, NC, A, NO),
         lambda c: {"seq": 0}),
    Rest("another-pairs-read", "POST", "/api/conversations/{pair}/read", (A, NO, NO, NO, NO, NO, A, NO),
         lambda c: {"seq": 0}),
    Rest("search", "GET", "/api/search?q=matrix", AUTHED_200),
    Rest("search-group", "GET", "/api/search?q=matrix&conversation_id={gcid}", (A, NO, OK, OK, OK, OK, A, NO)),
    Rest("search-another-pair", "GET", "/api/search?q=matrix&conversation_id={pair}", (A, NO, NO, NO, NO, NO, A, NO)),
    Rest("send-group", "POST", "/api/messages", (A, NO, ACCEPTED, NO, ACCEPTED, ACCEPTED, A, NO), _send("gcid")),
    Rest("send-another-pair", "POST", "/api/messages", (A, NO, NO, NO, NO, NO, A, NO), _send("pair")),
    Rest("block", "POST", "/api/users/{target}/block", (A, NC, NC, NC, NC, NC, A, NC)),
    Rest("unblock", "DELETE", "/api/users/{target}/block", (A, NC, NC, NC, NC, NC, A, NC)),
    Rest("blocked-list", "GET", "/api/users/blocked", AUTHED_200),
    Rest("recall-owners-message", "POST", "/api/messages/{owner_msg}/recall", (A, 404, NO, NO, NO, NC, A, 404)),
    Rest("edit-owners-message", "POST", "/api/messages/{owner_msg}/edit", (A, 404, NO, NO, NO, NC, A, 404),
         lambda c: {"body": f"edited by {c.role}"}),
    Rest("edit-unknown", "POST", "/api/messages/123/edit", (A, 404, 404, 404, 404, 404, A, 404),
         lambda c: {"body": "x"}),
    Rest("hide-owners-message", "DELETE", "/api/messages/{owner_msg}", (A, 404, NC, NC, NC, NC, A, 404)),
    Rest("pin-group", "PATCH", "/api/conversations/{gcid}", (A, NO, NC, NC, NC, NC, A, NO), lambda c: {"pinned": True}),
    Rest("pin-another-pair", "PATCH", "/api/conversations/{pair}", (A, NO, NO, NO, NO, NO, A, NO),
         lambda c: {"pinned": True}),
    Rest("send-own-1to1", "POST", "/api/messages", (A, ACCEPTED, ACCEPTED, ACCEPTED, ACCEPTED, ACCEPTED, A, ACCEPTED),
         _send("own1")),
    Rest("upload", "POST", "/api/uploads", (A, CREATED, CREATED, CREATED, CREATED, CREATED, A, CREATED),
         files=_png_file),
    # Downloads: readers of a message carrying the file; anyone else 404 (staff too: staff read no history).
    Rest("download-group-upload", "GET", "/api/uploads/{group_upload}", (A, 404, OK, OK, OK, OK, A, 404)),
    Rest("thumbnail-group-upload", "GET", "/api/uploads/{group_upload}/thumbnail", (A, 404, OK, OK, OK, OK, A, 404)),
    Rest("download-another-pairs-upload", "GET", "/api/uploads/{pair_upload}", (A, 404, 404, 404, 404, 404, A, 404)),
]


def _route_key(method: str, path: str) -> tuple[str, str]:
    """`GET api/groups/{}/members` for both a row's path and a URL pattern."""
    import re

    path = re.sub(r"<[^>]+>|\{[^}]+\}", "{}", path.split("?")[0].lstrip("/"))
    return method.upper(), path


def test_every_rest_endpoint_and_method_is_in_the_matrix() -> None:
    """A new endpoint or method must get a row: compared with the URL configuration."""
    from django.urls import URLPattern, URLResolver, get_resolver

    def walk(patterns: list[Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
        for p in patterns:
            if isinstance(p, URLResolver):
                yield from walk(p.url_patterns, prefix + str(p.pattern))
            elif isinstance(p, URLPattern):
                yield prefix + str(p.pattern), p.callback

    covered = {_route_key(row.method, row.path) for row in REST_MATRIX}
    served = {_route_key(method, path)
              for path, view in walk(get_resolver().url_patterns)
              if path.startswith("api/") and path not in ("api/schema", "api/docs", "api/redoc")
              for method in ("get", "post", "put", "patch", "delete") if hasattr(view.view_class, method)}
    assert len(served) >= 19
    assert served <= covered, f"no row in REST_MATRIX for {sorted(served - covered)}"


@pytest.mark.parametrize(("row", "role"), [(row, role) for row in REST_MATRIX for role in ROLES],
                         ids=[f"{row.name}-{role}" for row in REST_MATRIX for role in ROLES])
def test_rest_matrix(world: World, row: Rest, role: str) -> None:
    me = caller(world, role)
    gid = world.gid
    if row.fresh_group:
        u = world.users
        gid = _group(u["owner"], u["admin"], u["member"], u["muted"], u["banned"], world.target, world.blocker,
                     banned_already=True)["id"]
    ctx = Ctx(world, role, me, gid)
    values = ctx.fmt()
    if "{owner_msg}" in row.path:
        values["owner_msg"] = world.owner_message(row.name)
    for where in ("group", "pair"):
        if f"{{{where}_upload}}" in row.path:
            values[f"{where}_upload"] = world.sent_upload(where)
    path = row.path.format(**values)
    r = call(role, me, row.method, path, row.body(ctx) if row.body else None, row.files(ctx) if row.files else None)
    expected = row.expect[ROLES.index(role)]
    assert r.status_code == expected, f"{role} {row.method} {path}: {r.status_code} {r.text[:300]}"
    if expected >= 400:
        assert "detail" in r.json(), r.text  # DRF's error shape, never an HTML page
    if role == "banned" and row.name not in ("register", "login", "refresh"):
        assert r.json().get("code") == "user_inactive", r.text


# --- WebSocket -----------------------------------------------------------------------


@dataclass(frozen=True)
class Ws:
    name: str
    frame: Callable[[World, User], dict[str, Any]]
    expect: tuple[str, ...]  # per role: a reply type ("ack", "pong", "sync_result"), "error:<code>",
    #                          "quiet" (no reply; a ping afterwards gets the pong) or "close:<code>"


def _ws_send(cid: Callable[[World, User], str]) -> Callable[[World, User], dict[str, Any]]:
    return lambda w, me: {"type": "send", "client_msg_id": uuid.uuid4().hex, "conversation_id": cid(w, me),
                          "body": "matrix"}


def _group_cid(w: World, me: User) -> str:
    return w.group["conversation_id"]


def _pair_cid(w: World, me: User) -> str:
    return single_cid(*w.pair)


NOT_MEMBER = "error:not_member"
C401, C403 = "close:4401", "close:4403"
#               anonymous outsider member muted admin owner banned staff
WS_MATRIX = [
    Ws("ping", lambda w, me: {"type": "ping"}, (C401, "pong", "pong", "pong", "pong", "pong", C403, "pong")),
    Ws("send-group", _ws_send(_group_cid),
       (C401, NOT_MEMBER, "ack", "error:forbidden", "ack", "ack", C403, NOT_MEMBER)),
    Ws("send-another-pair", _ws_send(_pair_cid), (C401,) + (NOT_MEMBER,) * 5 + (C403, NOT_MEMBER)),
    Ws("send-own-1to1", _ws_send(lambda w, me: single_cid(me, w.target)), (C401,) + ("ack",) * 5 + (C403, "ack")),
    Ws("sync-group", lambda w, me: {"type": "sync", "conversation_id": _group_cid(w, me), "after_seq": 0},
       (C401, NOT_MEMBER, "sync_result", "sync_result", "sync_result", "sync_result", C403, NOT_MEMBER)),
    Ws("sync-another-pair", lambda w, me: {"type": "sync", "conversation_id": _pair_cid(w, me), "after_seq": 0},
       (C401,) + (NOT_MEMBER,) * 5 + (C403, NOT_MEMBER)),
    Ws("read-group", lambda w, me: {"type": "read", "conversation_id": _group_cid(w, me), "seq": 0},
       (C401, NOT_MEMBER, "quiet", "quiet", "quiet", "quiet", C403, NOT_MEMBER)),
    Ws("read-another-pair", lambda w, me: {"type": "read", "conversation_id": _pair_cid(w, me), "seq": 0},
       (C401,) + (NOT_MEMBER,) * 5 + (C403, NOT_MEMBER)),
    Ws("typing-group", lambda w, me: {"type": "typing", "conversation_id": _group_cid(w, me)},
       (C401, NOT_MEMBER, "quiet", "quiet", "quiet", "quiet", C403, NOT_MEMBER)),
    Ws("typing-another-pair", lambda w, me: {"type": "typing", "conversation_id": _pair_cid(w, me)},
       (C401,) + (NOT_MEMBER,) * 5 + (C403, NOT_MEMBER)),
    Ws("recall-unknown", lambda w, me: {"type": "recall", "message_id": "123"},
       (C401,) + ("error:not_found",) * 5 + (C403, "error:not_found")),
    Ws("recall-owners-message", lambda w, me: {"type": "recall", "message_id": w.owner_message("ws-recall")},
       (C401, "error:not_found", "error:forbidden", "error:forbidden", "error:forbidden", "quiet", C403,
        "error:not_found")),
    Ws("edit-unknown", lambda w, me: {"type": "edit", "message_id": "123", "body": "x"},
       (C401,) + ("error:not_found",) * 5 + (C403, "error:not_found")),
    Ws("edit-owners-message", lambda w, me: {"type": "edit", "message_id": w.owner_message("ws-edit"), "body": "x"},
       (C401, "error:not_found", "error:forbidden", "error:forbidden", "error:forbidden", "quiet", C403,
        "error:not_found")),
    Ws("send-anothers-upload", lambda w, me: {
        "type": "send", "client_msg_id": uuid.uuid4().hex, "conversation_id": single_cid(me, w.target), "body": "",
        "kind": "image", "extra": {"upload_id": w.sent_upload("pair")}},
       (C401,) + ("error:bad_upload",) * 5 + (C403, "error:bad_upload")),
    Ws("auth-own-fresh-token", lambda w, me: {"type": "auth", "token": access_token(me.id, expires_in=3600)[0]},
       (C401,) + ("auth_ok",) * 5 + (C403, "auth_ok")),
    Ws("auth-anothers-token", lambda w, me: {"type": "auth", "token": access_token(w.target.id, expires_in=3600)[0]},
       (C401,) + ("error:invalid",) * 5 + (C403, "error:invalid")),
    Ws("unknown-type", lambda w, me: {"type": "dance"}, (C401,) + ("error:unknown_type",) * 5 + (C403,
                                                                                                 "error:unknown_type")),
]


def test_every_client_frame_type_is_in_the_matrix() -> None:
    """A new frame type (a new `on_<type>` handler in the gateway) must get a row."""
    from messaging.gateway.consumer import ChatConsumer

    handled = {name.removeprefix("on_") for name in dir(ChatConsumer) if name.startswith("on_")}
    covered = {row.name.split("-")[0] for row in WS_MATRIX}
    assert {"send", "sync", "read", "ping"} <= handled
    assert handled <= covered, f"no row in WS_MATRIX for {sorted(handled - covered)}"


def _reply(sock: Socket) -> dict[str, Any]:
    return sock.wait_for(lambda f: f["type"] in ("ack", "error", "pong", "sync_result", "auth_ok"), timeout=10)


@pytest.mark.parametrize(("row", "role"), [(row, role) for row in WS_MATRIX for role in ROLES],
                         ids=[f"{row.name}-{role}" for row in WS_MATRIX for role in ROLES])
def test_ws_matrix(world: World, row: Ws, role: str) -> None:
    me = caller(world, role)
    expected = row.expect[ROLES.index(role)]
    token = "" if role == "anonymous" else me.access
    sock = Socket.open(token, settle=False)
    try:
        frame = row.frame(world, me)
        if expected.startswith("close:"):
            with contextlib.suppress(ConnectionClosed):  # closed before the frame went out: the code counts
                sock.send(frame)
            assert sock.closed_with() == int(expected.split(":")[1])
            return
        sock.send(frame)
        if expected == "quiet":
            sock.send({"type": "ping"})
            assert _reply(sock) == {"type": "pong"}, sock.frames
            return
        reply = _reply(sock)
        if expected.startswith("error:"):
            assert (reply["type"], reply.get("code")) == ("error", expected.split(":")[1]), reply
        else:
            assert reply["type"] == expected, reply
        if row.name.startswith("send"):
            assert reply["client_msg_id"] == frame["client_msg_id"]
        assert sock.request({"type": "ping"}, "pong") == {"type": "pong"}
    finally:
        sock.close()


# --- tokens ----------------------------------------------------------------------------


def test_refresh_token_replayed_after_logout_is_refused(world: World) -> None:
    u = register("mxlog")
    base = gateway_url()
    assert u.post("/api/auth/logout", {"refresh": u.refresh}).status_code == 205
    r = requests.post(f"{base}/api/auth/refresh", json={"refresh": u.refresh}, timeout=10)
    assert r.status_code == 401 and r.json()["code"] == "token_not_valid", r.text
    assert u.post("/api/auth/logout", {"refresh": u.refresh}).status_code == 400  # already blacklisted


def test_refresh_token_replayed_after_rotation_is_refused(world: World) -> None:
    u = register("mxrot")
    base = gateway_url()
    r = requests.post(f"{base}/api/auth/refresh", json={"refresh": u.refresh}, timeout=10)
    assert r.status_code == 200 and r.json()["refresh"] != u.refresh
    again = requests.post(f"{base}/api/auth/refresh", json={"refresh": u.refresh}, timeout=10)
    assert again.status_code == 401, again.text


def test_banned_users_tokens_die_at_once(world: World) -> None:
    """Decision: the ban is effective immediately everywhere, not at the access token's
    expiry: REST answers 401 `user_inactive` (simplejwt checks is_active per request),
    refresh and login 401, WebSocket 4403."""
    banned = world.users["banned"]
    r = banned.get("/api/users/me")
    assert (r.status_code, r.json()["code"]) == (401, "user_inactive"), r.text
    r = requests.post(f"{gateway_url()}/api/auth/refresh", json={"refresh": world.refresh_for(banned.id)}, timeout=10)
    assert r.status_code == 401, r.text
    r = requests.post(f"{gateway_url()}/api/auth/login", json={"username": banned.username, "password": PASSWORD},
                      timeout=10)
    assert r.status_code == 401, r.text
    assert Socket.open(banned.access, settle=False).closed_with() == 4403


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")  # HS512 with the dev key: on purpose
@pytest.mark.parametrize("kind", ["refresh-as-access", "unsigned", "wrong-key", "other-algorithm"])
def test_forged_or_misused_tokens_are_refused(world: World, kind: str) -> None:
    import jwt
    from rest_framework_simplejwt.settings import api_settings as settings

    me = world.users["member"]
    claims = jwt.decode(me.access, options={"verify_signature": False})
    token = {
        "refresh-as-access": me.refresh,
        "unsigned": jwt.encode(claims, key="", algorithm="none"),
        "wrong-key": jwt.encode(claims, key="x" * 64, algorithm="HS256"),
        # The server's own key, but not the algorithm it accepts (HS256 only).
        "other-algorithm": jwt.encode(claims, key=settings.SIGNING_KEY, algorithm="HS512"),
    }[kind]
    r = requests.get(f"{gateway_url()}/api/users/me", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert r.status_code == 401, r.text
    assert Socket.open(token, settle=False).closed_with() == 4401


def test_access_token_is_not_a_refresh_token(world: World) -> None:
    me = world.users["member"]
    r = requests.post(f"{gateway_url()}/api/auth/refresh", json={"refresh": me.access}, timeout=10)
    assert r.status_code == 401, r.text
