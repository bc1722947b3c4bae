"""REST throttles answer 429 with Retry-After (rates lowered for the test; the
counters live in the real Redis cache)."""

import uuid

import pytest
from rest_framework.test import APIClient
from rest_framework.throttling import UserRateThrottle

from accounts.api.views import AuthIpThrottle
from accounts.models import User

pytestmark = pytest.mark.django_db


def test_login_is_throttled_per_ip(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(AuthIpThrottle, "rate", "3/min", raising=False)
    ip = f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.7"
    api = APIClient(REMOTE_ADDR=ip)
    for _ in range(3):
        assert api.post("/api/auth/login", {"username": "nobody", "password": "x"}, format="json").status_code == 401
    r = api.post("/api/auth/login", {"username": "nobody", "password": "x"}, format="json")
    assert r.status_code == 429
    assert int(r["Retry-After"]) > 0
    other = APIClient(REMOTE_ADDR="10.255.0.1" if ip != "10.255.0.1" else "10.255.0.2")
    assert other.post("/api/auth/login", {"username": "nobody", "password": "x"}, format="json").status_code == 401


def test_api_calls_are_throttled_per_user(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(UserRateThrottle, "rate", "2/min", raising=False)
    user = User.objects.create_user(username=f"t{uuid.uuid4().hex[:8]}", password="Corr3ct-horse-battery")
    api = APIClient()
    api.force_authenticate(user)
    assert api.get("/api/users/me").status_code == 200
    assert api.get("/api/users/me").status_code == 200
    r = api.get("/api/users/me")
    assert r.status_code == 429 and "Retry-After" in r


def _user(prefix: str) -> User:
    return User.objects.create_user(username=f"{prefix}{uuid.uuid4().hex[:8]}", password="Corr3ct-horse-battery")


def _guess(user: User, ip: str) -> int:
    api = APIClient(REMOTE_ADDR=ip)
    api.force_authenticate(user)
    body = {"old_password": "a-guess-at-it-1", "new_password": "Another-horse-staple-9"}
    r = api.post("/api/auth/password", body, format="json")
    assert r.status_code != 429 or int(r["Retry-After"]) > 0
    return r.status_code


def test_password_change_is_throttled_per_account_across_addresses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(AuthIpThrottle, "rate", "3/min", raising=False)
    user = _user("pwt")
    net = uuid.uuid4().int % 250
    assert [_guess(user, f"10.{net}.1.{i}") for i in range(4)] == [400, 400, 400, 429]


def test_password_change_is_throttled_per_address_across_accounts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(AuthIpThrottle, "rate", "3/min", raising=False)
    ip = f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.9"
    assert [_guess(_user("pwi"), ip) for _ in range(4)] == [400, 400, 400, 429]
