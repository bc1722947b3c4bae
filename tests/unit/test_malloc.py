"""The gateway's glibc malloc settings (gochat_project/ops/malloc.py): applied by the ASGI
module before the gateway starts threads, overridable, and off on request."""

import ctypes
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gochat_project.ops import malloc

ROOT = Path(__file__).resolve().parents[2]


class FakeLibc:
    def __init__(self) -> None:
        self.calls: list[tuple[int, int]] = []

    def mallopt(self, param: ctypes.c_int, value: ctypes.c_int) -> int:
        self.calls.append((param.value, value.value))
        return 1


def test_caps_arenas_and_fixes_the_thresholds() -> None:
    libc = FakeLibc()
    applied = malloc.tune(libc, environ={})  # type: ignore[arg-type]
    assert libc.calls == [(malloc.M_ARENA_MAX, 2), (malloc.M_MMAP_THRESHOLD, 128 * 1024),
                          (malloc.M_TRIM_THRESHOLD, 128 * 1024)]
    assert applied == dict(libc.calls)


def test_the_environment_wins() -> None:
    libc = FakeLibc()
    malloc.tune(libc, environ={"MALLOC_ARENA_MAX": "4"})  # type: ignore[arg-type]
    assert malloc.M_ARENA_MAX not in dict(libc.calls)
    assert len(libc.calls) == 2


def test_can_be_turned_off() -> None:
    libc = FakeLibc()
    assert malloc.tune(libc, environ={"GOCHAT_MALLOC_TUNING": "0"}) == {}  # type: ignore[arg-type]
    assert libc.calls == []


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt")
def test_the_asgi_module_applies_it_before_any_thread_starts() -> None:
    """A fresh interpreter importing the ASGI application (what Daphne and uvicorn do)."""
    code = ("import threading, sys\n"
            "from gochat_project.ops import malloc\n"
            "seen = []\n"
            "orig = malloc.tune\n"
            "def tune(*a, **k):\n"
            "    seen.append(threading.active_count())\n"
            "    return orig(*a, **k)\n"
            "malloc.tune = tune\n"
            "import gochat_project.asgi\n"
            "print(seen, sorted(malloc.APPLIED.items()))\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "GOCHAT_MALLOC_TUNING"}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=120, check=True).stdout.strip().splitlines()[-1]
    expected = {malloc.M_ARENA_MAX: 2, malloc.M_MMAP_THRESHOLD: 131072, malloc.M_TRIM_THRESHOLD: 131072}
    assert out == f"[1] {sorted(expected.items())}"  # one thread: applied before any other started
