"""Accounts REST (docs/protocol.md, Accounts) in-process against the real MySQL test database."""

import base64
import json
from datetime import timedelta

import pytest
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import AccessToken

from accounts.models import User

PASSWORD = "Corr3ct-horse-battery"
pytestmark = pytest.mark.django_db


@pytest.fixture
def api() -> APIClient:
    return APIClient()


def register(api: APIClient, username: str, password: str = PASSWORD, **extra: str):
    return api.post("/api/auth/register", {"username": username, "password": password, **extra}, format="json")


def login(api: APIClient, username: str, password: str = PASSWORD):
    return api.post("/api/auth/login", {"username": username, "password": password}, format="json")


def authed(username: str) -> tuple[APIClient, dict]:
    api = APIClient()
    assert register(api, username).status_code == 201
    tokens = login(api, username).json()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens['access']}")
    return api, tokens


def test_register_returns_the_user(api: APIClient) -> None:
    r = register(api, "alice", nickname="Alice A.")
    assert r.status_code == 201
    assert r.json() == {"id": r.json()["id"], "username": "alice", "nickname": "Alice A."}


def test_register_without_nickname_uses_username(api: APIClient) -> None:
    assert register(api, "bob.b").json()["nickname"] == "bob.b"


def test_username_is_unique_case_insensitively(api: APIClient) -> None:
    assert register(api, "Carol").status_code == 201
    r = register(api, "cAROL")
    assert r.status_code == 400
    assert "username" in r.json()


@pytest.mark.parametrize("username", ["ab", "x" * 33, "has space", "emoji😀", "semi;colon", "", "a/b"])
def test_bad_usernames_are_rejected(api: APIClient, username: str) -> None:
    r = register(api, username)
    assert r.status_code == 400
    assert "username" in r.json()


@pytest.mark.parametrize("password", ["short", "12345678901", "password123", "davidsmith"])
def test_weak_passwords_are_rejected(api: APIClient, password: str) -> None:
    r = register(api, "davidsmith", password=password)
    assert r.status_code == 400
    assert "password" in r.json()


@pytest.mark.parametrize("body", [{"username": 5, "password": PASSWORD}, {"username": ["a"], "password": PASSWORD},
                                  {"password": PASSWORD}, {"username": "validname"}, [1, 2], "text"])
def test_malformed_register_bodies_give_400(api: APIClient, body: object) -> None:
    r = api.post("/api/auth/register", body, format="json")
    assert r.status_code == 400


def test_invalid_json_gives_400(api: APIClient) -> None:
    r = api.post("/api/auth/register", data="{not json", content_type="application/json")
    assert r.status_code == 400
    assert "detail" in r.json()


def test_invalid_utf8_gives_400(api: APIClient) -> None:
    r = api.post("/api/auth/register", data=b'{"username": "\xff\xfe"}', content_type="application/json")
    assert r.status_code == 400


def test_oversized_body_gives_413(api: APIClient) -> None:
    r = api.post("/api/auth/register", data=json.dumps({"username": "x", "password": "y" * 70000}),
                 content_type="application/json")
    assert r.status_code == 413


def test_unknown_fields_are_ignored(api: APIClient) -> None:
    assert register(api, "erin", is_staff="true", id="99").status_code == 201
    assert not User.objects.get(username="erin").is_staff


def test_login_returns_tokens_and_user(api: APIClient) -> None:
    register(api, "frank")
    r = login(api, "frank")
    assert r.status_code == 200
    body = r.json()
    assert body["access"] and body["refresh"]
    assert body["user"]["username"] == "frank"


def test_login_with_wrong_password_gives_401(api: APIClient) -> None:
    register(api, "grace")
    assert login(api, "grace", "Wrong-password-1").status_code == 401
    assert login(api, "nobody-here").status_code == 401


def test_me_requires_a_valid_token(api: APIClient) -> None:
    client, _ = authed("heidi")
    assert client.get("/api/users/me").json()["username"] == "heidi"
    assert api.get("/api/users/me").status_code == 401
    api.credentials(HTTP_AUTHORIZATION="Bearer garbage.token.here")
    assert api.get("/api/users/me").status_code == 401


def test_expired_token_gives_401(api: APIClient) -> None:
    register(api, "ivan")
    token = AccessToken.for_user(User.objects.get(username="ivan"))
    token.set_exp(lifetime=-timedelta(seconds=1))
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert api.get("/api/users/me").status_code == 401


def test_alg_none_token_gives_401(api: APIClient) -> None:
    register(api, "judy")
    user = User.objects.get(username="judy")
    real = AccessToken.for_user(user)

    def b64(d: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()

    forged = f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(dict(real.payload))}."
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {forged}")
    assert api.get("/api/users/me").status_code == 401


def test_refresh_rotates_and_logout_revokes(api: APIClient) -> None:
    client, tokens = authed("ken")
    r = api.post("/api/auth/refresh", {"refresh": tokens["refresh"]}, format="json")
    assert r.status_code == 200
    rotated = r.json()
    assert rotated["access"] and rotated["refresh"] != tokens["refresh"]
    # The old refresh token was blacklisted by the rotation.
    assert api.post("/api/auth/refresh", {"refresh": tokens["refresh"]}, format="json").status_code == 401
    assert client.post("/api/auth/logout", {"refresh": rotated["refresh"]}, format="json").status_code == 205
    assert api.post("/api/auth/refresh", {"refresh": rotated["refresh"]}, format="json").status_code == 401


def test_logout_with_someone_elses_token_is_refused() -> None:
    client, _ = authed("leo")
    _, other = authed("mallory")
    assert client.post("/api/auth/logout", {"refresh": other["refresh"]}, format="json").status_code == 403


@pytest.mark.parametrize("body", [{}, {"refresh": 12}, {"refresh": "nonsense"}])
def test_bad_refresh_bodies(api: APIClient, body: dict) -> None:
    assert api.post("/api/auth/refresh", body, format="json").status_code in (400, 401)


def test_banned_user_cannot_login_or_refresh(api: APIClient) -> None:
    _, tokens = authed("nina")
    User.objects.filter(username="nina").update(is_active=False)
    assert login(api, "nina").status_code == 401
    assert api.post("/api/auth/refresh", {"refresh": tokens["refresh"]}, format="json").status_code == 401


def test_user_search_is_paginated() -> None:
    client, _ = authed("searcher")
    for i in range(25):
        User.objects.create_user(username=f"findme{i:02d}", password=PASSWORD)
    page = client.get("/api/users", {"search": "findme"}).json()
    assert len(page["results"]) == 20
    assert page["next"]
    rest = client.get(page["next"]).json()
    assert len(rest["results"]) == 5 and rest["next"] is None
    names = {u["username"] for u in page["results"] + rest["results"]}
    assert names == {f"findme{i:02d}" for i in range(25)}


def test_user_detail_shows_online_state() -> None:
    client, _ = authed("olga")
    other = User.objects.create_user(username="peter", password=PASSWORD)
    body = client.get(f"/api/users/{other.id}").json()
    assert body == {"id": other.id, "username": "peter", "nickname": "", "online": False,
                    "last_seen": None}
    assert client.get("/api/users/999999999").status_code == 404


def test_openapi_schema_lists_every_endpoint(api: APIClient) -> None:
    r = api.get("/api/schema", HTTP_ACCEPT="application/json")
    assert r.status_code == 200
    paths = json.loads(r.content)["paths"] if r["Content-Type"].startswith("application/json") else None
    if paths is None:
        import yaml

        paths = yaml.safe_load(r.content)["paths"]
    for p in ["/api/auth/register", "/api/auth/login", "/api/auth/refresh", "/api/auth/logout", "/api/auth/password",
              "/api/users/me", "/api/users", "/api/users/{user_id}", "/api/conversations", "/api/messages",
              "/api/conversations/{conversation_id}/messages", "/api/conversations/{conversation_id}/read"]:
        assert p in paths, p
