"""glibc malloc settings for GoChat's processes: the gateway (asgi.py), logic and the
Celery workers (docs/reliability.md, "Gateway memory").

A gateway mallocs from many threads (Twisted's reactor, asgiref's pool for
database_sync_to_async, librdkafka's threads behind the upstream producer and the
downstream consumer). In a chaos soak at 200 msg/s (2026-12-02) the memory malloc
had handed out stayed flat (mallinfo2 in use 24-25 MiB) while the memory it held
*free* stepped from 3 to 9 MiB when the broker slowed down, and RSS with it. Two
glibc defaults let free memory pile up like that: one arena per thread up to
8 x cores (an untuned logic process has 15 arena heaps), and a "dynamic mmap
threshold" that, once a large block is freed, serves later large blocks (fetch
buffers, sync pages) from the heap and keeps up to twice their size untrimmed.

`tune()` sets, before the process starts its threads:
- M_ARENA_MAX 2: at most two arenas, whatever the thread count;
- M_MMAP_THRESHOLD and M_TRIM_THRESHOLD fixed at 128 KiB (glibc's initial values):
  setting them turns the dynamic threshold off, so large blocks are mmapped and
  returned to the kernel when freed, and free memory above 128 KiB at the top of
  the heap is given back.

It is done in-process (ctypes mallopt) so it travels with the code to every way a
gateway is started (scripts/supervisord.conf, deploy/, tests/stack.py, bench), and an
explicit MALLOC_ARENA_MAX / MALLOC_*_THRESHOLD_ in the environment still wins.
GOCHAT_MALLOC_TUNING=0 turns it off (to measure without it).
"""

import ctypes
import ctypes.util
import logging
import os

log = logging.getLogger(__name__)

# <malloc.h>
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8

SETTINGS = {
    # parameter: (value, the glibc tunable environment variable that overrides it)
    M_ARENA_MAX: (2, "MALLOC_ARENA_MAX"),
    M_MMAP_THRESHOLD: (128 * 1024, "MALLOC_MMAP_THRESHOLD_"),
    M_TRIM_THRESHOLD: (128 * 1024, "MALLOC_TRIM_THRESHOLD_"),
}

APPLIED: dict[int, int] = {}


def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
        libc.mallopt  # noqa: B018 - not glibc (musl, macOS) if missing
    except (OSError, AttributeError):
        return None
    return libc


def tune(libc: ctypes.CDLL | None = None, environ: dict[str, str] | None = None) -> dict[int, int]:
    """Apply SETTINGS through mallopt; return what was applied (empty if not glibc or turned off)."""
    env = os.environ if environ is None else environ
    if env.get("GOCHAT_MALLOC_TUNING", "1") == "0":
        return {}
    libc = libc if libc is not None else _libc()
    if libc is None:
        return {}
    applied = {}
    for param, (value, env_name) in SETTINGS.items():
        if env_name in env:
            continue  # the operator's own setting (read by glibc at startup) stands
        if libc.mallopt(ctypes.c_int(param), ctypes.c_int(value)) == 1:
            applied[param] = value
        else:
            log.warning("mallopt(%d, %d) failed", param, value)
    APPLIED.update(applied)
    return applied
