"""Eager writes for Daphne's TCP connections.

Twisted buffers every write and sends it on the next reactor turn: on the asyncio
reactor each frame pushed to an idle socket registers a writer (an epoll_ctl and a
selector-key rebuild), and the turn after that sends the bytes and unregisters it
again. Under load that dance cost the gateway about a fifth of its CPU, more than the
send itself (py-spy, docs/benchmarks.md). asyncio's own transports first try the send
and only register a writer for what the kernel did not take; this does the same for
Twisted's plain TCP connections.

Only when nothing is buffered: then writing now keeps the order of the bytes. Anything
the kernel does not take, and every error, goes the usual way (buffered, sent or
reported as a lost connection by the reactor). A streaming producer that is not paused
is fine: Daphne's connections carry one (the HTTP channel registers itself before the
WebSocket upgrade and stays), and Twisted only pauses it when the buffer fills, which
an empty buffer does not. A pull producer is asked for more data when the buffer
drains, so its writes keep the buffered path.
"""

import logging
from typing import Any

log = logging.getLogger(__name__)

# What the patch reads; _tempDataLen is set per instance (missing: treated as buffered).
_STATE = ("connected", "disconnecting", "_writeDisconnected", "dataBuffer", "offset", "producer",
          "streamingProducer", "producerPaused", "TLS", "writeSomeData")


def install() -> bool:
    """Patch twisted.internet.tcp.Connection.write once; False if Twisted's internals differ."""
    from twisted.internet import tcp

    if getattr(tcp.Connection.write, "gochat_eager", False):
        return True
    if not all(hasattr(tcp.Connection, name) for name in _STATE):
        log.warning("Twisted %s: unexpected connection internals, eager writes not installed", _version())
        return False
    buffered_write = tcp.Connection.write

    def write(self: Any, data: bytes) -> None:
        if (data and self.connected and not self.disconnecting and not self._writeDisconnected
                and not self.TLS and (self.producer is None or (self.streamingProducer and not self.producerPaused))
                and not getattr(self, "_tempDataLen", 1) and self.offset == len(self.dataBuffer)):
            sent = self.writeSomeData(data)
            if isinstance(sent, int) and sent > 0:  # an exception: the reactor reports the loss
                if sent == len(data):
                    return
                data = data[sent:]
        buffered_write(self, data)

    write.gochat_eager = True  # type: ignore[attr-defined]
    tcp.Connection.write = write
    return True


def _version() -> str:
    import twisted

    return twisted.__version__
