"""A small protocol client for the tests: REST calls and a WebSocket that keeps
every frame it has seen, so a test can wait for one frame without losing others."""

import json
import math
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import requests
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from tests.stack import gateway_url, ws_url

PASSWORD = "Corr3ct-horse-battery"


@dataclass
class User:
    id: int
    username: str
    access: str
    refresh: str
    gateway_id: str = "tgw1"

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access}"}

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return requests.get(gateway_url(self.gateway_id) + path, headers=self.headers, timeout=10, **kwargs)

    def post(self, path: str, body: Any = None, **kwargs: Any) -> requests.Response:
        return requests.post(gateway_url(self.gateway_id) + path, json=body, headers=self.headers, timeout=10,
                             **kwargs)

    def patch(self, path: str, body: Any = None) -> requests.Response:
        return requests.patch(gateway_url(self.gateway_id) + path, json=body, headers=self.headers, timeout=10)

    def delete(self, path: str) -> requests.Response:
        return requests.delete(gateway_url(self.gateway_id) + path, headers=self.headers, timeout=10)

    def ws(self, gateway_id: str | None = None) -> "Socket":
        return Socket.open(self.access, gateway_id or self.gateway_id)


def register(prefix: str = "u", gateway_id: str = "tgw1") -> User:
    username = f"{prefix}{uuid.uuid4().hex[:10]}"
    base = gateway_url(gateway_id)
    r = requests.post(f"{base}/api/auth/register", json={"username": username, "password": PASSWORD}, timeout=10)
    assert r.status_code == 201, r.text
    r = requests.post(f"{base}/api/auth/login", json={"username": username, "password": PASSWORD}, timeout=10)
    assert r.status_code == 200, r.text
    body = r.json()
    return User(body["user"]["id"], username, body["access"], body["refresh"], gateway_id)


def access_token(user_id: int, *, expires_in: float) -> tuple[str, int]:
    """An access token of `user_id` minted here (the servers share the signing key through
    settings), expiring `expires_in` seconds from now rounded up to the whole second of
    its `exp` claim; the token and that exp (epoch seconds)."""
    from rest_framework_simplejwt.tokens import AccessToken

    token = AccessToken()
    token["user_id"] = user_id
    exp = math.ceil(time.time() + expires_in)
    token["exp"] = exp
    return str(token), exp


def single_cid(a: User, b: User) -> str:
    x, y = sorted((a.id, b.id))
    return f"s_{x}_{y}"


class Socket:
    def __init__(self, conn: ClientConnection) -> None:
        self.conn = conn
        self.frames: list[dict[str, Any]] = []
        self.close_code: int | None = None

    @classmethod
    def open(cls, token: str, gateway_id: str = "tgw1", *, settle: bool = True) -> "Socket":
        sock = cls(connect(f"{ws_url(gateway_id)}?token={token}", open_timeout=10, max_size=2**22))
        if settle:
            # A ping round trip proves the connection is authenticated and registered in presence.
            sock.send({"type": "ping"})
            sock.wait_for(lambda f: f["type"] == "pong")
        return sock

    def send(self, frame: dict[str, Any] | str) -> None:
        try:
            self.conn.send(frame if isinstance(frame, str) else json.dumps(frame))
        except ConnectionClosed as exc:  # the server's close can be noticed by a send too
            self._closed(exc)
            raise

    def send_message(self, cid: str, body: str, client_msg_id: str | None = None, **extra: Any) -> str:
        cmid = client_msg_id or uuid.uuid4().hex
        self.send({"type": "send", "client_msg_id": cmid, "conversation_id": cid, "body": body, **extra})
        return cmid

    def _pump(self, timeout: float) -> bool:
        try:
            raw = self.conn.recv(timeout=timeout)
        except TimeoutError:
            return False
        except ConnectionClosed as exc:
            self._closed(exc)
            raise
        self.frames.append(json.loads(raw))
        return True

    def _closed(self, exc: ConnectionClosed) -> None:
        self.close_code = exc.rcvd.code if exc.rcvd else None

    def wait_for(self, match: Callable[[dict[str, Any]], bool], timeout: float = 10.0) -> dict[str, Any]:
        """The first unconsumed frame matching; consumed so the next wait finds the next one."""
        deadline = time.monotonic() + timeout
        while True:
            for i, frame in enumerate(self.frames):
                if match(frame):
                    return self.frames.pop(i)
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no matching frame in {timeout}s; have {self.frames[-5:]}")
            self._pump(min(left, 0.5))

    def ack_for(self, cmid: str, timeout: float = 10.0) -> dict[str, Any]:
        return self.wait_for(lambda f: f.get("client_msg_id") == cmid and f["type"] in ("ack", "error"), timeout)

    def message(self, match: Callable[[dict[str, Any]], bool] = lambda m: True, timeout: float = 10.0) -> dict:
        return self.wait_for(lambda f: f["type"] == "message" and match(f["message"]), timeout)["message"]

    def request(self, frame: dict[str, Any], reply_type: str, timeout: float = 10.0) -> dict[str, Any]:
        self.send(frame)
        return self.wait_for(lambda f: f["type"] in (reply_type, "error"), timeout)

    def sync(self, cid: str, after_seq: int = 0, limit: int = 200) -> list[dict[str, Any]]:
        """Every message after after_seq, following has_more."""
        out: list[dict[str, Any]] = []
        while True:
            reply = self.request({"type": "sync", "conversation_id": cid, "after_seq": after_seq, "limit": limit},
                                 "sync_result")
            assert reply["type"] == "sync_result", reply
            out.extend(reply["messages"])
            if not reply["has_more"] or not reply["messages"]:
                return out
            after_seq = reply["messages"][-1]["seq"]

    def closed_with(self, timeout: float = 10.0) -> int | None:
        """Wait for the server to close the socket; returns the close code."""
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                self._pump(0.5)
        except ConnectionClosed:
            return self.close_code
        raise TimeoutError("socket still open")

    def quiet(self, seconds: float) -> list[dict[str, Any]]:
        """Collect frames arriving within the next `seconds`."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            self._pump(min(left, 0.2))
        return self.frames

    def drain(self) -> None:
        """Read every frame that has already arrived, without waiting (raises ConnectionClosed)."""
        while self._pump(0):
            pass

    def close(self) -> None:
        self.conn.close()


def bulk_users(count: int, prefix: str = "bulk", gateway_id: str = "tgw1") -> list[User]:
    """Users created straight in MySQL with tokens minted locally: hashing a password
    per user through the API would make the group tests slow, not more real."""
    from django.contrib.auth.hashers import make_password
    from rest_framework_simplejwt.tokens import RefreshToken

    from accounts.models import User as UserModel

    tag = uuid.uuid4().hex[:8]
    rows = UserModel.objects.bulk_create(
        [UserModel(username=f"{prefix}{tag}{i}", password=make_password(None)) for i in range(count)])
    if rows[0].pk is None:  # MySQL returns no ids from bulk inserts
        rows = list(UserModel.objects.filter(username__startswith=f"{prefix}{tag}").order_by("id"))
    out = []
    for row in rows:
        refresh = RefreshToken.for_user(row)
        out.append(User(row.pk, row.username, str(refresh.access_token), str(refresh), gateway_id))
    return out


def chat_with_stored_history(db_reader: Any, count: int, prefix: str) -> tuple[User, User, "Socket", str]:
    """Two new users, the first's socket, and their 1:1 holding `count` messages already in MySQL."""
    a, b = register(prefix), register(prefix)
    sock = a.ws()
    cid = single_cid(a, b)
    for i in range(count):
        sock.ack_for(sock.send_message(cid, f"{prefix} {i}"))
    db_reader.wait_stored(cid, count)
    return a, b, sock, cid
