"""Search index lag: how long after a send its message can be found by `GET /api/search`.

A message becomes searchable when persistence commits its batch (the `message_search`
row is written in the same transaction as the `messages` row), so the lag is the
persistence path's: the Celery consumer's fetch, its 200 ms commit window, the
multi-row INSERTs. It is measured from outside, on the table a search reads:

- a poller thread reads the ids of the index rows written in the last `window_s`
  seconds every `interval_s` (message ids are snowflakes, time-ordered, so "the last
  few seconds" is one primary-key range) and notes when it first saw each;
- a message's lag is that moment minus the time inside its id (logic assigns the id
  a moment before it acks, on the same clock: one machine);
- a row first seen after `window_s` (missed by every poll) counts as lagging by more
  than `window_s`, so it stays in the percentiles rather than out of them.

The poller's own cost (one range read of about rate x window_s ids per poll) is small
beside the load, and its resolution is `interval_s`.
"""

import threading
import time
from typing import Any

from messaging.search import SEARCH_TABLE
from messaging.snowflake import EPOCH_MS, SEQUENCE_BITS, WORKER_BITS, timestamp_ms


def first_id_at(ms: int) -> int:
    """The smallest snowflake id stamped at `ms` or later."""
    return (ms - EPOCH_MS) << (WORKER_BITS + SEQUENCE_BITS)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


WINDOW_S = 10.0  # a row not seen this long after its send counts as this late


class IndexPoller(threading.Thread):
    """Notes when each row of `table` written after it started is first visible: the
    search index by default; `messages` gives the stored-row lag to compare with."""

    def __init__(self, connect: Any, *, table: str = SEARCH_TABLE, window_s: float = WINDOW_S,
                 interval_s: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.conn = connect()
        self.conn.autocommit(True)  # each read sees what is committed by then
        self.table = table
        self.window_ms = int(window_s * 1000)
        self.interval_s = interval_s
        self.started_ms = now_ms()
        self.seen: dict[int, int] = {}  # message id -> ms first seen
        self.polls = 0
        self._halt = threading.Event()

    def poll(self) -> None:
        cursor = self.conn.cursor()
        lo = first_id_at(max(self.started_ms, now_ms() - self.window_ms))
        cursor.execute(f"SELECT message_id FROM {self.table} WHERE message_id >= %s", [lo])
        at = now_ms()
        for (message_id,) in cursor.fetchall():
            self.seen.setdefault(message_id, at)
        self.polls += 1

    def run(self) -> None:
        while not self._halt.is_set():
            self.poll()
            self._halt.wait(self.interval_s)

    def stop(self) -> None:
        self._halt.set()
        self.join(10)

    def lags_ms(self) -> tuple[list[float], int]:
        """(lag of every row written since the start, how many were missed by every poll:
        those count as `window_s`, a lower bound)."""
        cursor = self.conn.cursor()
        cursor.execute(f"SELECT message_id FROM {self.table} WHERE message_id >= %s",
                       [first_id_at(self.started_ms)])
        lags, missed = [], 0
        for (message_id,) in cursor.fetchall():
            at = self.seen.get(message_id)
            if at is None:
                missed += 1
                lags.append(float(self.window_ms))
            else:
                lags.append(float(at - timestamp_ms(message_id)))
        return lags, missed
