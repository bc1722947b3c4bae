"""64-bit snowflake ids: 41 bits of ms since 2024-01-01, 10 bits worker, 12 bits sequence."""

import threading
import time

EPOCH_MS = 1704067200000
WORKER_BITS = 10
SEQUENCE_BITS = 12
MAX_WORKER = (1 << WORKER_BITS) - 1
MAX_SEQUENCE = (1 << SEQUENCE_BITS) - 1


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class Snowflake:
    def __init__(self, worker_id: int) -> None:
        if not 0 <= worker_id <= MAX_WORKER:
            raise ValueError(f"worker_id must be in 0..{MAX_WORKER}")
        self.worker_id = worker_id
        self._last_ms = -1
        self._sequence = 0
        self._lock = threading.Lock()

    def next_id(self) -> tuple[int, int]:
        """Return (id, ms timestamp embedded in it). Never repeats, even if the clock steps back."""
        with self._lock:
            ms = max(now_ms(), self._last_ms)
            if ms == self._last_ms:
                self._sequence = (self._sequence + 1) & MAX_SEQUENCE
                if self._sequence == 0:  # 4096 ids in this ms: borrow the next one
                    ms += 1
            else:
                self._sequence = 0
            self._last_ms = ms
            elapsed = (ms - EPOCH_MS) << (WORKER_BITS + SEQUENCE_BITS)
            value = elapsed | (self.worker_id << SEQUENCE_BITS) | self._sequence
            return value, ms


def timestamp_ms(snowflake_id: int) -> int:
    """The ms timestamp embedded in an id."""
    return (snowflake_id >> (WORKER_BITS + SEQUENCE_BITS)) + EPOCH_MS
