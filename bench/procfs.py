"""CPU time and RSS of processes, read from /proc (the bench and the chaos soak)."""

import contextlib
import os
from collections.abc import Callable
from pathlib import Path


def proc_cpu_s(pid: int) -> float:
    """utime + stime of a process and its threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _tree(pid: int) -> list[int]:
    """A process and its children (a gateway or worker started through a wrapper)."""
    pids = [pid]
    with contextlib.suppress(FileNotFoundError):
        pids += [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    return pids


def _tree_sum(pid: int, read: Callable[[int], float]) -> float:
    """`read` summed over a process and its children; processes that are gone count 0."""
    total = 0.0
    for p in _tree(pid):
        with contextlib.suppress(FileNotFoundError):
            total += read(p)
    return total


def tree_cpu_s(pid: int) -> float:
    return _tree_sum(pid, proc_cpu_s)


def tree_rss_kib(pid: int) -> int:
    return int(_tree_sum(pid, proc_rss_kib))
