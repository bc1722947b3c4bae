"""Profile and password (PROTOCOL v1.1, "Profile and groups") end to end on the live
stack: `PATCH /api/users/me` and `POST /api/auth/password`."""

from typing import Any

import pytest
import requests

from tests.client import PASSWORD, User, register
from tests.stack import gateway_url

pytestmark = pytest.mark.usefixtures("stack")

NEW_PASSWORD = "Another-horse-staple-9"


def anonymous(method: str, path: str, body: Any) -> requests.Response:
    return requests.request(method, gateway_url() + path, json=body, timeout=10)


def login(username: str, password: str) -> requests.Response:
    return anonymous("POST", "/api/auth/login", {"username": username, "password": password})


def refresh(token: str) -> requests.Response:
    return anonymous("POST", "/api/auth/refresh", {"refresh": token})


def change_password(user: User, old: Any = PASSWORD, new: Any = NEW_PASSWORD) -> requests.Response:
    return user.post("/api/auth/password", {"old_password": old, "new_password": new})


# --- PATCH /api/users/me ---------------------------------------------------------------


def test_nickname_change_returns_the_user_and_others_see_it() -> None:
    me, other = register("nick"), register("nick")
    r = me.patch("/api/users/me", {"nickname": "Zoë 🌻"})
    assert r.status_code == 200, r.text
    assert r.json() == {"id": me.id, "username": me.username, "nickname": "Zoë 🌻"}
    assert me.get("/api/users/me").json()["nickname"] == "Zoë 🌻"
    assert other.get(f"/api/users/{me.id}").json()["nickname"] == "Zoë 🌻"


def test_blank_nickname_shows_the_username_as_at_registration() -> None:
    me = register("nick")
    assert me.patch("/api/users/me", {"nickname": "Someone"}).json()["nickname"] == "Someone"
    for blank in ("", "   "):
        assert me.patch("/api/users/me", {"nickname": blank}).json()["nickname"] == me.username


def test_nickname_of_64_characters_is_the_longest() -> None:
    me = register("nick")
    assert me.patch("/api/users/me", {"nickname": "n" * 64}).status_code == 200
    r = me.patch("/api/users/me", {"nickname": "n" * 65})
    assert r.status_code == 400 and "nickname" in r.json(), r.text
    assert me.get("/api/users/me").json()["nickname"] == "n" * 64


@pytest.mark.parametrize("body", [{"nickname": 5}, {"nickname": None}, {"nickname": ["a"]}, {"nickname": True},
                                  {"nickname": {"x": 1}}, {"nickname": "nul\x00"}, [1], "text"])
def test_bad_profile_bodies_give_400(body: Any) -> None:
    me = register("nick")
    r = me.patch("/api/users/me", body)
    assert r.status_code == 400, r.text
    if isinstance(body, dict):
        assert "nickname" in r.json(), r.text
    assert me.get("/api/users/me").json()["nickname"] == me.username


def test_profile_update_without_a_nickname_changes_nothing() -> None:
    """PATCH semantics: an absent field is left as it is (the OpenAPI schema says so too)."""
    me = register("nick")
    assert me.patch("/api/users/me", {"nickname": "Kept"}).status_code == 200
    r = me.patch("/api/users/me", {})
    assert r.status_code == 200 and r.json()["nickname"] == "Kept", r.text


def test_profile_update_ignores_other_fields() -> None:
    me = register("nick")
    r = me.patch("/api/users/me", {"nickname": "Plain", "username": "hijack", "id": 1, "is_staff": True})
    assert r.status_code == 200
    assert r.json() == {"id": me.id, "username": me.username, "nickname": "Plain"}
    assert login("hijack", PASSWORD).status_code == 401


@pytest.mark.parametrize(("method", "path", "body"), [
    ("PATCH", "/api/users/me", {"nickname": "x"}),
    ("POST", "/api/auth/password", {"old_password": PASSWORD, "new_password": NEW_PASSWORD})])
def test_anonymous_callers_get_401(method: str, path: str, body: dict[str, str]) -> None:
    r = anonymous(method, path, body)
    assert r.status_code == 401 and "detail" in r.json(), r.text


@pytest.mark.parametrize(("method", "path", "body"), [
    ("PATCH", "/api/users/me", {"nickname": "x" * 70_000}),
    ("POST", "/api/auth/password", {"old_password": PASSWORD, "new_password": "y" * 70_000})])
def test_oversized_bodies_give_413(method: str, path: str, body: dict[str, str]) -> None:
    me = register("big")
    r = requests.request(method, gateway_url() + path, json=body, headers=me.headers, timeout=10)
    assert r.status_code == 413, r.text


# --- POST /api/auth/password -------------------------------------------------------------


def test_password_change_revokes_every_refresh_token_but_not_access_tokens_or_sockets() -> None:
    laptop = register("pw")
    phone_login = login(laptop.username, PASSWORD).json()
    phone = User(laptop.id, laptop.username, phone_login["access"], phone_login["refresh"])
    rotated = refresh(phone.refresh).json()  # a rotated token is revoked too
    phone.access, phone.refresh = rotated["access"], rotated["refresh"]
    sock = phone.ws()

    r = change_password(laptop)
    assert (r.status_code, r.content) == (204, b""), r.text

    for token in (laptop.refresh, phone.refresh):  # the caller's and the other device's
        r = refresh(token)
        assert (r.status_code, r.json()["code"]) == (401, "token_not_valid"), r.text
    assert laptop.get("/api/users/me").status_code == 200  # access tokens run to their expiry
    assert phone.get("/api/users/me").status_code == 200
    assert sock.request({"type": "ping"}, "pong") == {"type": "pong"}  # the open socket keeps going
    sock.close()

    assert login(laptop.username, PASSWORD).status_code == 401
    fresh = login(laptop.username, NEW_PASSWORD)
    assert fresh.status_code == 200, fresh.text
    assert refresh(fresh.json()["refresh"]).status_code == 200  # tokens issued after the change work


def test_wrong_old_password_gives_400_and_changes_nothing() -> None:
    """400 on the field, not login's 401: the caller's token is fine, and clients treat
    a 401 on an authenticated call as "refresh and retry"."""
    me = register("pw")
    r = change_password(me, old="Not-the-password-1")
    assert r.status_code == 400 and "old_password" in r.json(), r.text
    assert refresh(me.refresh).status_code == 200
    assert login(me.username, PASSWORD).status_code == 200
    assert login(me.username, NEW_PASSWORD).status_code == 401


@pytest.mark.parametrize("weak", ["short", "12345678901", "password123", "{username}-x"])
def test_weak_new_password_gives_400_and_changes_nothing(weak: str) -> None:
    me = register("pw")
    new = weak.format(username=me.username)
    r = change_password(me, new=new)
    assert r.status_code == 400 and "new_password" in r.json(), r.text
    assert refresh(me.refresh).status_code == 200
    assert login(me.username, new).status_code == 401


@pytest.mark.parametrize("body", [{"old_password": 5, "new_password": NEW_PASSWORD},
                                  {"old_password": PASSWORD, "new_password": None},
                                  {"old_password": PASSWORD, "new_password": ["x"]},
                                  {"old_password": PASSWORD, "new_password": "z" * 129},
                                  {"old_password": PASSWORD}, {"new_password": NEW_PASSWORD}, [1], "text"])
def test_bad_password_bodies_give_400(body: Any) -> None:
    me = register("pw")
    r = me.post("/api/auth/password", body)
    assert r.status_code == 400, r.text
    assert login(me.username, PASSWORD).status_code == 200


def test_password_change_ignores_other_fields() -> None:
    me, other = register("pw"), register("pw")
    r = me.post("/api/auth/password", {"old_password": PASSWORD, "new_password": NEW_PASSWORD, "user_id": other.id})
    assert r.status_code == 204
    assert login(other.username, PASSWORD).status_code == 200
    assert refresh(other.refresh).status_code == 200  # another user's tokens are untouched
    assert login(me.username, NEW_PASSWORD).status_code == 200
