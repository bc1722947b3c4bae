"""Writes sent once per event-loop turn, without registering a writer.

Twisted buffers every write and sends it when the reactor finds the socket writable:
on the asyncio reactor each frame pushed to an idle socket registers a writer (an
epoll_ctl and a selector-key rebuild), and the turn after that sends the bytes and
unregisters it again. Under load that dance cost the gateway about a fifth of its CPU,
more than the send itself (py-spy, docs/benchmarks.md).

Here a write to an idle connection is queued and the connection is put on a list that
is flushed once the callbacks of the current turn are done (`call_soon` on the asyncio
loop): everything written to a socket in one turn (an ack and a message, say) leaves in
one send, and no writer is registered unless the kernel does not take it all. Sending
each write at once instead cost more than it saved at high rates: one send per frame,
and one wake-up per frame in every client (docs/benchmarks.md).

Only when nothing is buffered the Twisted way, so the order of the bytes is kept. What
the kernel does not take, and every error, is left to the reactor (buffered, sent or
reported as a lost connection). A streaming producer that is not paused is fine:
Daphne's connections carry one (the HTTP channel registers itself before the WebSocket
upgrade and stays), and Twisted only pauses it when the buffer fills. A pull producer
is asked for more data when the buffer drains, so its writes keep the buffered path.
"""

import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

# What the patch reads; _tempDataLen is set per instance (missing: treated as buffered).
_STATE = ("connected", "disconnecting", "_writeDisconnected", "dataBuffer", "offset", "producer",
          "streamingProducer", "producerPaused", "TLS", "writeSomeData", "startWriting", "_maybePauseProducer")


def install() -> bool:
    """Patch twisted.internet.tcp.Connection.write once; False if Twisted's internals differ."""
    from twisted.internet import tcp

    if getattr(tcp.Connection.write, "gochat_eager", False):
        return True
    if not all(hasattr(tcp.Connection, name) for name in _STATE):
        log.warning("Twisted %s: unexpected connection internals, eager writes not installed", _version())
        return False
    buffered_write: Callable[[Any, bytes], None] = tcp.Connection.write  # untyped in Twisted
    due: list[Any] = []  # connections with writes queued this turn, in order

    def flush() -> None:
        conns = due[:]
        due.clear()
        for conn in conns:
            conn.gochat_due = False
            _send(conn)

    def write(self: Any, data: bytes) -> None:
        if data and getattr(self, "gochat_due", False):  # already queued this turn: join it
            self._tempDataBuffer.append(data)
            self._tempDataLen += len(data)
            self._maybePauseProducer()
            return
        if (data and self.connected and not self.disconnecting and not self._writeDisconnected
                and not self.TLS and (self.producer is None or (self.streamingProducer and not self.producerPaused))
                and not getattr(self, "_tempDataLen", 1) and self.offset == len(self.dataBuffer)):
            self._tempDataBuffer.append(data)
            self._tempDataLen += len(data)
            self._maybePauseProducer()
            self.gochat_due = True
            due.append(self)
            if len(due) == 1:
                _at_end_of_turn(self.reactor, flush)
            return
        buffered_write(self, data)

    write.gochat_eager = True  # type: ignore[attr-defined]
    tcp.Connection.write = write  # type: ignore[method-assign]
    return True


def _send(conn: Any) -> None:
    """Send what was queued for conn this turn; leave the rest to the reactor."""
    if not conn._tempDataLen:
        return
    if not conn.connected:  # lost meanwhile: dropped, as Twisted drops writes to it
        conn._tempDataBuffer, conn._tempDataLen = [], 0
        return
    if conn.disconnecting or conn.offset != len(conn.dataBuffer):
        conn.startWriting()  # the reactor's doWrite sends it in order, then closes
        return
    data = b"".join(conn._tempDataBuffer)
    conn._tempDataBuffer = []
    conn._tempDataLen = 0
    sent = conn.writeSomeData(data)
    if not isinstance(sent, int) or sent < 0:  # an exception: the reactor reports the loss
        sent = 0
    if sent == len(data):
        conn.dataBuffer, conn.offset = b"", 0
        if conn.producer is not None and conn.producerPaused:  # as doWrite does once drained
            conn.producerPaused = False
            conn.producer.resumeProducing()
        return
    conn.dataBuffer, conn.offset = data, sent
    conn.startWriting()


def _at_end_of_turn(reactor: Any, callback: Any) -> None:
    loop = getattr(reactor, "_asyncioEventloop", None)
    if loop is not None:
        loop.call_soon(callback)
    else:  # other reactors (tests): their next turn
        reactor.callLater(0, callback)


def _version() -> str:
    import twisted

    return twisted.__version__
