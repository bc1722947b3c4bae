"""Holes closed on the live stack: tokens signed with the key that used to be public
are refused, and the per-IP auth throttle keys on an address the client cannot choose
(GOCHAT_TRUSTED_PROXIES; gochat_project/client_address.py)."""

import time
import uuid
from collections.abc import Iterator

import jwt
import pytest
import requests
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.client import register
from tests.stack import _PORT_BASE, Process, gateway, gateway_url, ws_url

pytestmark = pytest.mark.usefixtures("stack")

OLD_DEV_KEY = "dev-insecure-gochat-key-do-not-use-in-production-0123456789"
LIMIT = 5  # auth requests a minute per address on the gateways these tests start


def _forged(user_id: int, key: str) -> str:
    now = int(time.time())
    return jwt.encode({"token_type": "access", "exp": now + 600, "iat": now, "jti": uuid.uuid4().hex,
                       "user_id": str(user_id)}, key, algorithm="HS256")


def test_a_token_signed_with_the_once_public_key_is_refused() -> None:
    victim = register("victim")
    forged = _forged(victim.id, OLD_DEV_KEY)
    r = requests.get(f"{gateway_url()}/api/users/me", headers={"Authorization": f"Bearer {forged}"}, timeout=10)
    assert r.status_code == 401, r.text
    with connect(f"{ws_url()}?token={forged}", open_timeout=10) as ws, pytest.raises(ConnectionClosed):
        ws.recv(timeout=10)
    assert ws.close_code == 4401
    assert victim.get("/api/users/me").status_code == 200  # the real token still works


def _throttled_gateway(port: int, trusted: int) -> Process:
    return gateway(f"tproxy{trusted}", port, env={"GOCHAT_THROTTLE_AUTH": f"{LIMIT}/min",
                                                  "GOCHAT_TRUSTED_PROXIES": str(trusted)})


@pytest.fixture(scope="module")
def gateways() -> Iterator[dict[int, int]]:
    """Gateways trusting 0 and 1 proxies, with the auth throttle at LIMIT a minute: {trusted: port}."""
    ports = {0: _PORT_BASE + 31, 1: _PORT_BASE + 32}
    procs = [_throttled_gateway(port, trusted) for trusted, port in ports.items()]
    for proc in procs:
        proc.start()
    try:
        yield ports
    finally:
        for proc in procs:
            proc.stop()


def _forget(*addresses: str) -> None:
    """Empty the throttle buckets of these addresses (other tests log in from 127.0.0.1)."""
    from django.core.cache import cache

    for address in addresses:
        cache.delete(f"throttle_auth_ip_{address}")


def _login(port: int, forwarded_for: str | None = None) -> int:
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
    return requests.post(f"http://127.0.0.1:{port}/api/auth/login", json={"username": "nobody", "password": "x"},
                         headers=headers, timeout=10).status_code


def test_a_spoofed_forwarded_for_does_not_change_the_bucket(gateways: dict[int, int]) -> None:
    port = gateways[0]
    _forget("127.0.0.1")
    assert [_login(port, f"203.0.113.{i}") for i in range(LIMIT)] == [401] * LIMIT
    assert _login(port, "198.51.100.77") == 429  # a new header, the same socket: the same bucket
    assert _login(port) == 429


def test_with_one_trusted_proxy_the_hop_it_saw_is_the_client(gateways: dict[int, int]) -> None:
    port = gateways[1]
    client, other = "198.51.100.7", "198.51.100.8"
    _forget("127.0.0.1", client, other)
    # The proxy appends the address it saw; what the client wrote before it is ignored.
    assert [_login(port, f"203.0.113.{i}, {client}") for i in range(LIMIT)] == [401] * LIMIT
    assert _login(port, f"6.6.6.6, {client}") == 429
    assert _login(port, client) == 429
    assert _login(port, f"{client}, {other}") == 401  # another client behind the proxy: its own bucket
    assert _login(port) == 401  # a request that bypassed the proxy counts against the peer, untouched so far
