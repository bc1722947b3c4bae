"""What an HTTP request and a socket leave behind on the live stack: an access line, a
request id in the response and on the line, request metrics by route; with
GOCHAT_LOG_JSON=1 every line the gateway writes is one JSON object."""

import json
import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from websockets.sync.client import connect

from gochat_project.access_log import incoming_request_id
from tests.client import PASSWORD
from tests.stack import _PORT_BASE, Process, gateway

pytestmark = pytest.mark.usefixtures("stack")

PORT, METRICS_PORT = _PORT_BASE + 33, _PORT_BASE + 34


@pytest.fixture(scope="module")
def json_gateway() -> Iterator[Process]:
    proc = gateway("tgw2", PORT, env={"GOCHAT_LOG_JSON": "1", "GOCHAT_METRICS_PORT": str(METRICS_PORT)})
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


def _lines(proc: Process) -> list[dict]:
    text = proc.log_since_start()
    lines = [line for line in text.splitlines() if line.strip()]
    bad = [line for line in lines if not line.startswith("{")]
    assert not bad, bad[:5]  # every line is JSON, the server's own included
    return [json.loads(line) for line in lines]


def test_requests_and_sockets_are_logged_as_json_with_their_request_id(json_gateway: Process) -> None:
    base = f"http://127.0.0.1:{PORT}"
    name = f"acc{uuid.uuid4().hex[:10]}"
    assert requests.post(f"{base}/api/auth/register", json={"username": name, "password": PASSWORD},
                         timeout=10).status_code == 201
    login = requests.post(f"{base}/api/auth/login", json={"username": name, "password": PASSWORD},
                          headers={"X-Request-ID": "chosen-by-client"}, timeout=10)
    assert login.status_code == 200
    assert re.fullmatch(r"[0-9a-f]{32}", login.headers["X-Request-ID"])  # no proxy trusted: the client's is ignored
    token = login.json()["access"]
    me = requests.get(f"{base}/api/users/me?token=secret-in-query", headers={"Authorization": f"Bearer {token}"},
                      timeout=10)
    assert me.status_code == 200
    assert requests.get(f"{base}/api/no/such", timeout=10).status_code == 404
    with connect(f"ws://127.0.0.1:{PORT}/ws?token={token}", open_timeout=10) as ws:
        ws.send('{"type": "ping"}')
        assert json.loads(ws.recv(timeout=10))["type"] == "pong"
    json_gateway.stop()  # flushes its output; the module's other test reads it too

    lines = _lines(json_gateway)
    access = [line for line in lines if line["logger"] == "gochat.access"]
    me_line = next(line for line in access if line.get("path") == "/api/users/me")
    assert me_line["status"] == 200 and me_line["method"] == "GET" and me_line["client"] == "127.0.0.1"
    assert me_line["request_id"] == me.headers["X-Request-ID"]
    assert "secret-in-query" not in json.dumps(lines)  # query strings (tokens) are never logged
    assert any(line.get("path") == "/api/no/such" and line["status"] == 404 for line in access)
    events = {line.get("event") for line in access}
    assert {"ws_open", "ws_close"} <= events
    assert any(line.get("event") == "ws_close" and line.get("user_id") for line in access)
    assert "secret" not in json.dumps([line for line in lines if line.get("event", "").startswith("ws_")])


def test_request_metrics_are_counted_by_route() -> None:
    from tests.client import register

    user = register("met")
    assert user.get("/api/groups/999999999").status_code in (403, 404)
    from tests.stack import METRICS_PORTS

    text = requests.get(f"http://127.0.0.1:{METRICS_PORTS['tgw1']}/metrics", timeout=5).text
    assert re.search(r'gochat_http_requests_total\{method="POST",route="api/auth/login",status="200"\} [1-9]', text)
    assert re.search(r'gochat_http_requests_total\{method="GET",route="api/groups/<int:group_id>",status="40[34]"\}',
                     text)
    assert 'gochat_http_request_seconds_count{method="GET",route="api/groups/<int:group_id>"}' in text
    # Routes, not paths, so the label set stays bounded. Only labels are
    # searched: a float such as 104.14999999999999 holds the digits too.
    assert not re.search(r'route="[^"]*999999999', text)


@pytest.mark.parametrize(("trusted", "header", "kept"), [
    (0, "from-nginx-1", False), (1, "from-nginx-1", True), (1, "bad id with spaces", False), (1, None, False),
    (1, "x" * 65, False)])
def test_a_request_id_is_taken_only_from_a_trusted_proxy(settings: Any, trusted: int, header: str | None,
                                                         kept: bool) -> None:
    settings.GOCHAT_TRUSTED_PROXIES = trusted
    rid = incoming_request_id(header)
    assert (rid == header) is kept
    if not kept:
        assert re.fullmatch(r"[0-9a-f]{32}", rid)
