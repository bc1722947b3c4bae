"""Moderation and operations on the live stack: a moderator created by the
command logs into /admin/ over HTTP, bans and recalls; the effects reach sockets
on both gateways. Every manage.py command runs against the live services."""

import contextlib
import os
import re
import subprocess
import sys
import time
import uuid

import pytest
import requests

from tests.client import PASSWORD, Socket, chat_with_stored_history, register, single_cid
from tests.stack import METRICS_PORTS, ROOT, Process, Stack, gateway_url, wait_until

pytestmark = pytest.mark.usefixtures("stack")
PREFIX = os.environ["GOCHAT_TOPIC_PREFIX"]  # gochat_test, or an isolated session's own


def manage(*args: str, timeout: float = 120, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, input=stdin)


@pytest.fixture(scope="module")
def moderator() -> requests.Session:
    """A moderator made by `create_moderator`, logged into /admin/ like a browser."""
    name = f"mod{uuid.uuid4().hex[:8]}"
    out = manage("create_moderator", name, stdin=PASSWORD + "\n")
    assert out.returncode == 0, out.stderr
    assert "is a moderator" in out.stdout
    session = requests.Session()
    login_url = f"{gateway_url()}/admin/login/"
    session.get(login_url, timeout=10)
    r = session.post(login_url, data={"username": name, "password": PASSWORD, "next": "/admin/",
                                      "csrfmiddlewaretoken": session.cookies["csrftoken"]},
                     headers={"Referer": login_url}, timeout=10)
    assert r.status_code == 200 and "Log out" in r.text, "moderator could not log in"
    return session


def admin_action(session: requests.Session, model: str, action: str, ids: list[object], reason: str) -> None:
    url = f"{gateway_url()}/admin/{model}/"
    session.get(url, timeout=10)
    r = session.post(url, data={"action": action, "_selected_action": [str(i) for i in ids], "reason": reason,
                                "index": "0", "csrfmiddlewaretoken": session.cookies["csrftoken"]},
                     headers={"Referer": url}, timeout=20)
    assert r.status_code == 200, r.text[:500]


def test_moderator_finds_and_bans_a_user_everywhere(moderator: requests.Session, db_reader) -> None:
    victim = register("victim")
    s1, s2 = victim.ws("tgw1"), victim.ws("tgw2")
    found = moderator.get(f"{gateway_url()}/admin/accounts/user/", params={"q": victim.username}, timeout=10)
    assert victim.username in found.text
    started = time.monotonic()
    admin_action(moderator, "accounts/user", "ban", [victim.id], "spam")
    assert s1.closed_with(5) == 4403
    assert s2.closed_with(5) == 4403
    assert time.monotonic() - started < 2
    base = gateway_url()
    assert requests.post(f"{base}/api/auth/refresh", json={"refresh": victim.refresh}, timeout=10).status_code == 401
    assert requests.post(f"{base}/api/auth/login", json={"username": victim.username, "password": PASSWORD},
                         timeout=10).status_code == 401
    assert Socket.open(victim.access, settle=False).closed_with() == 4403
    from django.contrib.admin.models import LogEntry

    with db_reader.access():
        entry = LogEntry.objects.filter(object_id=str(victim.id)).latest("action_time")
    assert "Banned" in entry.get_change_message() and "spam" in entry.get_change_message()


def test_moderator_recall_reaches_members_and_history(moderator: requests.Session, db_reader) -> None:
    a, b = register("rec"), register("rec")
    sa, sb = a.ws(), b.ws()
    cid = single_cid(a, b)
    ack = sa.ack_for(sa.send_message(cid, "something nasty"))
    sb.message()
    db_reader.wait_stored(cid, 1)
    found = moderator.get(f"{gateway_url()}/admin/messaging/message/", params={"q": cid}, timeout=10)
    assert "something nasty" in found.text
    admin_action(moderator, "messaging/message", "recall", [ack["message_id"]], "abuse")
    for sock in (sa, sb):
        frame = sock.wait_for(lambda f: f["type"] == "recall")
        assert frame == {"type": "recall", "conversation_id": cid, "message_id": ack["message_id"], "seq": 1}
    msg = b.get(f"/api/conversations/{cid}/messages").json()["messages"][0]
    assert (msg["seq"], msg["body"], msg["recalled"]) == (1, "", True)
    assert sb.sync(cid)[0]["recalled"] is True


def test_recall_of_a_message_not_yet_stored_is_not_lost(stack: Stack, db_reader) -> None:
    from messaging.services import message_recall

    _, b, sa, cid = chat_with_stored_history(db_reader, 1, "race")
    stack.persist_worker.kill()
    try:
        ack = sa.ack_for(sa.send_message(cid, "recall me before I am stored"))
        with db_reader.access():
            message_recall(message_id=int(ack["message_id"]), conversation_id=cid, seq=ack["seq"])
        assert b.ws().sync(cid)[1]["recalled"] is True  # from the recent cache
    finally:
        stack.persist_worker.start()
    db_reader.wait_stored(cid, 2, timeout=60)
    msg = b.get(f"/api/conversations/{cid}/messages", params={"before_seq": 3}).json()["messages"][1]
    assert (msg["body"], msg["recalled"]) == ("", True)


def test_admin_lists_are_served_without_counting_everything(moderator: requests.Session) -> None:
    for model in ("accounts/user", "messaging/message", "groups/group", "groups/groupmember"):
        r = moderator.get(f"{gateway_url()}/admin/{model}/", timeout=10)
        assert r.status_code == 200, model


def test_create_moderator_reads_the_password_from_standard_input(db_reader) -> None:
    from accounts.models import User

    name = f"mod{uuid.uuid4().hex[:8]}"
    out = manage("create_moderator", name, stdin=PASSWORD + "\n")
    assert out.returncode == 0 and "is a moderator" in out.stdout, out.stderr
    with db_reader.access():
        user = User.objects.get(username=name)
        assert user.check_password(PASSWORD) and user.is_staff and not user.is_superuser
        assert list(user.groups.values_list("name", flat=True)) == ["moderators"]


def test_create_moderator_asks_twice_at_a_terminal(db_reader) -> None:
    import pty

    from accounts.models import User

    name = f"mod{uuid.uuid4().hex[:8]}"
    pid, fd = pty.fork()
    if pid == 0:  # the child: a terminal of its own, as an operator's shell gives it
        try:
            os.chdir(ROOT)
            os.execv(sys.executable, [sys.executable, "manage.py", "create_moderator", name])
        finally:
            os._exit(127)  # never back into pytest
    seen = b""
    for prompt, answer in ((b"Password: ", PASSWORD), (b"Password (again): ", PASSWORD)):
        while prompt not in seen:
            seen += os.read(fd, 1024)
        os.write(fd, answer.encode() + b"\n")
    with contextlib.suppress(OSError):  # EIO once the child has closed its end
        while chunk := os.read(fd, 1024):
            seen += chunk
    os.close(fd)
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0, seen
    assert PASSWORD.encode() not in seen  # not echoed
    with db_reader.access():
        assert User.objects.get(username=name).check_password(PASSWORD)


@pytest.mark.parametrize(("stdin", "error"), [("", "a password is required"), ("\n", "a password is required"),
                                              ("12345678\n", "weak password"), ("short\n", "weak password")])
def test_create_moderator_refuses_an_empty_or_weak_password(stdin: str, error: str, db_reader) -> None:
    from accounts.models import User

    name = f"mod{uuid.uuid4().hex[:8]}"
    out = manage("create_moderator", name, stdin=stdin)
    assert out.returncode == 1 and error in out.stderr, out.stdout + out.stderr
    with db_reader.access():
        assert not User.objects.filter(username=name).exists()


def test_create_moderator_no_longer_takes_a_password_argument(db_reader) -> None:
    from accounts.models import User

    name = f"mod{uuid.uuid4().hex[:8]}"
    out = manage("create_moderator", name, "--password", PASSWORD, stdin=PASSWORD + "\n")
    assert out.returncode == 2 and "unrecognized arguments: --password" in out.stderr, out.stderr
    assert "--password" not in manage("create_moderator", "--help").stdout
    with db_reader.access():
        assert not User.objects.filter(username=name).exists()


@pytest.mark.parametrize("command", ["run_logic", "run_gateway", "kafka_topics", "gochat_status",
                                     "reseed_sequences", "seed_demo", "create_moderator", "services"])
def test_every_command_has_help(command: str) -> None:
    out = manage(command, "--help")
    assert out.returncode == 0 and "usage" in out.stdout.lower()


def test_gochat_status_shows_the_live_system(db_reader) -> None:
    a, b = register("st"), register("st")
    sock = a.ws()
    sock.ack_for(sock.send_message(single_cid(a, b), "counted"))
    db_reader.wait_stored(single_cid(a, b), 1)  # the status counts stored messages
    out = manage("gochat_status")
    assert out.returncode == 0, out.stdout + out.stderr
    for line in ("mysql    ok", "redis    ok", "kafka    ok", "consumer lag", "online users:",
                 "messages stored in the last minute:"):
        assert line in out.stdout
    assert re.search(r"messages stored in the last minute: [1-9]", out.stdout)
    assert re.search(rf"{PREFIX}\.messages\.upstream\s+{PREFIX}-logic\s+\d+", out.stdout)


def test_gochat_status_exit_code_when_redis_is_unreachable() -> None:
    env = {**os.environ, "GOCHAT_REDIS_URL": "redis://127.0.0.1:1/0"}
    out = subprocess.run([sys.executable, "manage.py", "gochat_status"], cwd=ROOT, capture_output=True, text=True,
                         env=env, timeout=60)
    assert out.returncode == 1 and "redis    UNREACHABLE" in out.stdout


def test_kafka_topics_describe_and_alter() -> None:
    from gochat_project.ops import services

    out = manage("kafka_topics")
    assert out.returncode == 0 and f"{PREFIX}.messages.upstream" in out.stdout
    create = manage("kafka_topics", "create")
    assert create.returncode == 0 and "missing" not in create.stdout
    scratch = f"{PREFIX}.scratch{uuid.uuid4().hex[:6]}"
    services.ensure_topics({scratch: 2})
    bad = manage("kafka_topics", "alter", "--topic", scratch, "--partitions", "1")
    assert bad.returncode != 0 and "cannot reduce" in bad.stderr
    out = manage("kafka_topics", "alter", "--topic", scratch, "--partitions", "3")
    assert out.returncode == 0 and f"{scratch}: 2 -> 3 partitions" in out.stdout, out.stdout + out.stderr
    assert services.ensure_topics({scratch: 2})[scratch] == 3  # an existing topic is left as it is
    assert manage("kafka_topics", "alter", "--topic", f"{PREFIX}.nope", "--partitions", "2").returncode != 0


def test_reseed_sequences_keeps_counters_ahead(db_reader) -> None:
    # Right after the history is stored: the workers' commits (every 200 ms) may still
    # be pending, which the command waits out.
    _, _, sock, cid = chat_with_stored_history(db_reader, 3, "rs")
    out = manage("reseed_sequences")
    assert out.returncode == 0 and "reseeded" in out.stdout, out.stdout + out.stderr
    assert sock.ack_for(sock.send_message(cid, "next"))["seq"] == 4


def test_reseed_sequences_refuses_while_acked_messages_wait_for_storage(stack: Stack, db_reader) -> None:
    _, _, sock, cid = chat_with_stored_history(db_reader, 1, "rsb")
    stack.persist_worker.kill()
    try:
        assert sock.ack_for(sock.send_message(cid, "unstored"))["seq"] == 2
        out = manage("reseed_sequences", "--wait", "1")
        assert out.returncode == 1 and "persistence tasks are not done yet" in out.stderr, out.stdout + out.stderr
    finally:
        stack.persist_worker.start()
    assert [row[0] for row in db_reader.wait_stored(cid, 2)] == [1, 2]
    out = manage("reseed_sequences")
    assert out.returncode == 0 and "reseeded" in out.stdout, out.stdout + out.stderr


def test_run_gateway_starts_another_gateway() -> None:
    gw = Process("gateway-tgw3", [sys.executable, "manage.py", "run_gateway", "--gateway-id", "tgw3",
                                  "--port", str(METRICS_PORTS["fanout"] + 10)])
    gw.start()
    try:
        port = METRICS_PORTS["fanout"] + 10
        wait_until(lambda: _ok(f"http://127.0.0.1:{port}/healthz"), 30, "tgw3 up")
        a, b = register("g3"), register("g3")
        sb = b.ws()
        sock = Socket(__import__("websockets.sync.client", fromlist=["connect"]).connect(
            f"ws://127.0.0.1:{port}/ws?token={a.access}"))
        ack = sock.ack_for(sock.send_message(single_cid(a, b), "via gateway 3"))
        assert sb.message()["message_id"] == ack["message_id"]
        sb.send_message(single_cid(a, b), "back to gateway 3")
        assert sock.message()["body"] == "back to gateway 3"
    finally:
        gw.stop()


def _ok(url: str) -> bool:
    try:
        return requests.get(url, timeout=0.5).status_code == 200
    except requests.RequestException:
        return False


def _metric(text: str, name: str) -> float:
    values = [float(line.split()[-1]) for line in text.splitlines() if line.startswith(name)]
    return sum(values)


def test_metrics_count_a_sent_message() -> None:
    logic_url = f"http://127.0.0.1:{METRICS_PORTS['logic']}/metrics"
    persist_url = f"http://127.0.0.1:{METRICS_PORTS['persist']}/metrics"
    before_logic = _metric(requests.get(logic_url, timeout=5).text, "gochat_messages_accepted_total")
    before_persist = _metric(requests.get(persist_url, timeout=5).text, "gochat_messages_persisted_total")
    gateway_metrics = f"http://127.0.0.1:{METRICS_PORTS['tgw1']}/metrics"
    before_gw = _metric(requests.get(gateway_metrics, timeout=5).text, "gochat_frames_pushed_total")
    a, b = register("met"), register("met")
    sa, sb = a.ws(), b.ws()
    sa.ack_for(sa.send_message(single_cid(a, b), "count me"))
    sb.message()
    assert _metric(requests.get(logic_url, timeout=5).text, "gochat_messages_accepted_total") >= before_logic + 1
    assert _metric(requests.get(gateway_metrics, timeout=5).text,
                   "gochat_frames_pushed_total") >= before_gw + 2  # the ack and the message
    wait_until(lambda: _metric(requests.get(persist_url, timeout=5).text,
                               "gochat_messages_persisted_total") >= before_persist + 1, 20, "persisted metric")
    text = requests.get(gateway_metrics, timeout=5).text
    assert "gochat_gateway_connections" in text


def test_metrics_are_not_served_on_the_clients_port() -> None:
    """Pipeline internals stay on the metrics port (127.0.0.1), off the port clients reach."""
    r = requests.get(f"{gateway_url()}/metrics", timeout=5)
    assert r.status_code == 404 and "gochat_" not in r.text


def test_oldest_connection_closes_over_the_per_user_limit() -> None:
    u = register("many")
    socks = [u.ws("tgw1" if i % 2 else "tgw2") for i in range(10)]
    newest = u.ws()
    assert socks[0].closed_with(5) == 4409
    assert newest.request({"type": "ping"}, "pong")["type"] == "pong"
    assert socks[1].request({"type": "ping"}, "pong")["type"] == "pong"
