"""`make run`'s process manager (scripts/supervisord.conf, as scripts/run.sh starts it):
a kill -9 of each GoChat process is healed within seconds, nothing acknowledged is
lost, every line is shown prefixed with its process, and Ctrl-C stops everything.

It runs a whole second GoChat under supervisord, on its own ports, topic prefix and
Redis keys, beside the test stack (same MySQL database, same Kafka broker)."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.client import Socket, register, single_cid
from tests.conftest import Db
from tests.stack import _PORT_BASE, GATEWAY_PORTS, ROOT, VENV_BIN, Process, http_ok, wait_until

pytestmark = pytest.mark.usefixtures("stack")

PORT = _PORT_BASE + 41
HEAL_S = 15  # supervisord restarts an exited process within a second; the rest is the process starting


def _env(run_dir: Path) -> dict[str, str]:
    return {**os.environ, "GOCHAT_RUN_DIR": str(run_dir), "GOCHAT_PORT": str(PORT),
            "GOCHAT_TOPIC_PREFIX": os.environ.get("GOCHAT_TOPIC_PREFIX", "gochat_test") + "_sv",
            "GOCHAT_GATEWAY_ID": "sv1", "GOCHAT_GATEWAY_IDS": "sv1",
            "GOCHAT_GATEWAY_METRICS_PORT": str(PORT + 1), "GOCHAT_LOGIC_METRICS_PORT": str(PORT + 2),
            "GOCHAT_PERSIST_METRICS_PORT": str(PORT + 3), "GOCHAT_FANOUT_METRICS_PORT": str(PORT + 4)}


def _ctl(env: dict[str, str], *args: str) -> str:
    return subprocess.run([str(VENV_BIN / "supervisorctl"), "-c", "scripts/supervisord.conf", *args], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=30).stdout


def _running_pid(env: dict[str, str], name: str) -> int:
    """The pid of `name` once supervisord reports it RUNNING; 0 before."""
    status = _ctl(env, "status", name).split()
    return int(status[3].rstrip(",")) if len(status) > 3 and status[1] == "RUNNING" else 0


def test_a_killed_process_is_restarted_and_nothing_acked_is_lost(
        tmp_path: Path, db_reader: Db, monkeypatch: pytest.MonkeyPatch) -> None:
    env = _env(tmp_path)
    (tmp_path / "logs").mkdir()
    up = subprocess.run([sys.executable, "manage.py", "services", "up"], cwd=ROOT, env=env, capture_output=True,
                        text=True, timeout=300)
    assert up.returncode == 0, up.stdout + up.stderr  # the topics of this prefix
    # RUNNING means up for startsecs (5 s), not listening: a gateway starting beside the three
    # other processes on a busy 2-core machine took 6.3 s to listen. Wait for its /healthz too.
    supervisor = Process("supervisord", [str(VENV_BIN / "supervisord"), "-c", "scripts/supervisord.conf"],
                         env=env, ready=lambda _: all(_running_pid(env, n) for n in ("gateway", "logic", "persist",
                                                                                        "fanout"))
                         and http_ok(f"http://127.0.0.1:{PORT}/healthz"))  # RUNNING is not yet listening
    monkeypatch.setitem(GATEWAY_PORTS, "sv1", PORT)
    supervisor.start(timeout=90)
    try:
        a, b = register("sv", "sv1"), register("sv", "sv1")
        cid = single_cid(a, b)
        acked: list[dict] = []

        def send(sock: Socket, n: int = 5) -> None:
            cmids = [sock.send_message(cid, f"m{len(acked)}-{i}") for i in range(n)]
            acked.extend(sock.ack_for(cmid, timeout=60) for cmid in cmids)

        sock = a.ws()
        send(sock)
        healed = {}
        for name in ("logic", "persist", "fanout", "gateway"):
            pid = _running_pid(env, name)
            killed_at = time.monotonic()
            os.kill(pid, signal.SIGKILL)
            if name == "gateway":
                wait_until(lambda: _running_pid(env, "gateway") and http_ok(f"http://127.0.0.1:{PORT}/healthz"), HEAL_S,
                           "the gateway back",
                           interval=0.2)
                sock = a.ws()  # the client reconnects
            else:
                send(sock)  # acked once the process is back (logic) or stored once it is (persist)
            new_pid = wait_until(lambda name=name, pid=pid: _running_pid(env, name) not in (0, pid) and
                                 _running_pid(env, name), HEAL_S + 10, f"{name} restarted", interval=0.2)
            healed[name] = time.monotonic() - killed_at
            assert new_pid != pid
            send(sock)
        sock.close()
        assert all(seconds < HEAL_S for seconds in healed.values()), healed

        stored = db_reader.wait_stored(cid, len(acked), timeout=60)
        assert [seq for seq, _, _ in stored] == list(range(1, len(acked) + 1))  # no gap, no duplicate
        assert {mid for _, mid, _ in stored} == {ack["message_id"] for ack in acked}  # every ack stored

        log = supervisor.log_since_start()
        for name in healed:
            assert f"exited: {name} (terminated by SIGKILL; not expected)" in log
            assert f"spawned: '{name}'" in log
        assert "logic    | " in log and "gateway  | " in log  # each line prefixed with its process
    finally:
        assert supervisor.proc is not None
        supervisor.proc.send_signal(signal.SIGINT)  # Ctrl-C
        supervisor.proc.wait(90)
    assert supervisor.proc.returncode == 0
    for port in (PORT, PORT + 2, PORT + 3, PORT + 4):  # gateway and the metrics ports: every process is gone
        with pytest.raises(requests.ConnectionError):
            requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
