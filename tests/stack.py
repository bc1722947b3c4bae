"""The live stack for end-to-end tests: real Daphne gateways, the logic consumer
and Celery workers as subprocesses, on the test database, Redis db, Kafka broker
and topic prefix that pyproject.toml's pytest env sets."""

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
LOG_DIR = ROOT / ".run" / "test-logs" / os.environ.get("GOCHAT_TOPIC_PREFIX", "gochat_test")
VENV_BIN = Path(sys.executable).parent
_PORT_BASE = int(os.environ.get("GOCHAT_TEST_PORT_BASE", "18000"))
GATEWAY_PORTS = {"tgw1": _PORT_BASE + 1, "tgw2": _PORT_BASE + 2}
METRICS_PORTS = {"logic": _PORT_BASE + 11, "persist": _PORT_BASE + 12, "fanout": _PORT_BASE + 13,
                 "tgw1": _PORT_BASE + 14, "tgw2": _PORT_BASE + 15}


def gateway_url(gateway_id: str = "tgw1") -> str:
    return f"http://127.0.0.1:{GATEWAY_PORTS[gateway_id]}"


def ws_url(gateway_id: str = "tgw1") -> str:
    return f"ws://127.0.0.1:{GATEWAY_PORTS[gateway_id]}/ws"


def wait_until(predicate: Callable[[], object], timeout: float, what: str, interval: float = 0.05) -> object:
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class Process:
    """One GoChat process; kill -9 and restart it for fault tests."""

    def __init__(self, name: str, args: list[str], env: dict[str, str] | None = None,
                 ready: Callable[["Process"], bool] | None = None) -> None:
        self.name = name
        self.args = args
        self.env = {**os.environ, **(env or {})}
        self.ready = ready
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = LOG_DIR / f"{name}.log"

    def start(self, timeout: float = 60) -> None:
        self.launch()
        self.wait_ready(timeout)

    def launch(self) -> None:
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.args, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)

    def wait_ready(self, timeout: float = 60) -> None:
        if self.ready is not None:
            wait_until(lambda: self._alive_and_ready(), timeout, f"{self.name} to be ready", interval=0.1)

    def _alive_and_ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError(f"{self.name} exited with {self.proc.returncode}; see {self.log_path}")
        assert self.ready is not None
        return self.ready(self)

    def log_since_start(self) -> str:
        with open(self.log_path, "rb") as f:
            f.seek(self._log_offset)
            return f.read().decode(errors="replace")

    def kill(self) -> None:
        """kill -9: no cleanup, no drain."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self, timeout: float = 10) -> None:
        if self.running():
            self.signal_stop()
            self.wait_stopped(timeout)

    def signal_stop(self) -> None:
        """SIGTERM to the process group, without waiting."""
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)

    def wait_stopped(self, timeout: float = 10) -> None:
        """Wait for a signalled process to exit; kill -9 after timeout."""
        assert self.proc is not None
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


def http_ok(url: str) -> bool:
    """The URL answers 200 (a connection refused or a timeout is False)."""
    try:
        return requests.get(url, timeout=0.5).status_code == 200
    except requests.RequestException:
        return False


def _http_ready(url: str) -> Callable[[Process], bool]:
    return lambda _: http_ok(url)


def _port_in_use(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _log_ready(marker: str) -> Callable[[Process], bool]:
    return lambda p: marker in p.log_since_start()


def gateway(gateway_id: str, port: int | None = None, env: dict[str, str] | None = None) -> Process:
    """A gateway under Daphne (default) or uvicorn (GOCHAT_GATEWAY_SERVER=uvicorn); one of
    the stack's, or with `port` an extra one (no metrics port unless `env` gives one)."""
    metrics_port = METRICS_PORTS[gateway_id] if port is None else 0
    port = port or GATEWAY_PORTS[gateway_id]
    if os.environ.get("GOCHAT_GATEWAY_SERVER") == "uvicorn":
        args = [str(VENV_BIN / "uvicorn"), "gochat_project.asgi:application", "--host", "127.0.0.1", "--port",
                str(port), "--loop", "uvloop", "--http", "httptools", "--ws", "websockets", "--no-access-log",
                "--no-proxy-headers", "--timeout-graceful-shutdown", "5"]
    else:
        args = [str(VENV_BIN / "daphne"), "-b", "127.0.0.1", "-p", str(port), "--access-log", "/dev/null",
                "-v", os.environ.get("GOCHAT_DAPHNE_VERBOSITY", "1"), "gochat_project.asgi:application"]
    return Process(f"gateway-{gateway_id}", args,
                   env={"GOCHAT_GATEWAY_ID": gateway_id, "GOCHAT_METRICS_PORT": str(metrics_port), **(env or {})},
                   ready=_http_ready(f"http://127.0.0.1:{port}/healthz"))


def logic() -> Process:
    return Process("logic", [sys.executable, "manage.py", "run_logic"], ready=_log_ready("logic consuming"),
                   env={"GOCHAT_METRICS_PORT": str(METRICS_PORTS["logic"])})


def worker(queue: str, name: str) -> Process:
    return Process(f"worker-{name}",
                   [str(VENV_BIN / "celery"), "-A", "gochat_project", "worker", "--pool=solo",
                    "--prefetch-multiplier=1", "-Q", queue, "-n", f"{name}@test", "-l", "INFO"],
                   ready=_log_ready("ready."), env={"GOCHAT_METRICS_PORT": str(METRICS_PORTS[name])})


class Stack:
    def __init__(self) -> None:
        from gochat_project.infra import kafka

        self.gateways = {gid: gateway(gid) for gid in GATEWAY_PORTS}
        self.logic = logic()
        self.persist_worker = worker(kafka.persist_topic(), "persist")
        self.fanout_worker = worker(kafka.fanout_topic(), "fanout")

    def all(self) -> list[Process]:
        return [*self.gateways.values(), self.logic, self.persist_worker, self.fanout_worker]

    def start(self) -> None:
        for port in GATEWAY_PORTS.values():
            if _port_in_use(port):
                raise RuntimeError(f"port {port} is taken (a stale gateway?); the stack needs it free")
        try:
            # All at once: most of a start is waiting (imports, Kafka group joins).
            for p in self.all():
                p.launch()
            for p in self.all():
                p.wait_ready()
        except Exception:
            self.stop()
            raise

    def stop(self) -> None:
        # All at once, as start does: each process's shutdown is mostly waiting.
        running = [p for p in self.all() if p.running()]
        for p in running:
            p.signal_stop()
        for p in running:
            p.wait_stopped()
