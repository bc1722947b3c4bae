"""gochat_project.patches.twisted_writes on a real socket pair: what a turn writes to an idle
connection leaves in one send at the end of the turn, without registering a writer;
what the kernel does not take is buffered and every byte arrives once, in order."""

import socket

import pytest
from twisted.internet import tcp
from twisted.internet.protocol import Protocol
from twisted.internet.selectreactor import SelectReactor

from gochat_project.patches import twisted_writes


@pytest.fixture
def connection():
    assert twisted_writes.install()
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    reactor = SelectReactor()
    conn = tcp.Connection(ours, Protocol(), reactor)
    conn.connected = 1
    yield conn, theirs, reactor
    ours.close()
    theirs.close()


def _end_turn(reactor: SelectReactor) -> None:
    reactor.runUntilCurrent()  # the calls scheduled for the end of this turn


def _read_all(sock: socket.socket, n: int, conn: tcp.Connection) -> bytes:
    got = bytearray()
    sock.settimeout(5)
    while len(got) < n:
        if conn.reactor.getWriters():
            conn.doWrite()
        got += sock.recv(1 << 20)
    return bytes(got)


def _pending(sock: socket.socket) -> bytes:
    sock.setblocking(False)
    try:
        return sock.recv(100)
    except BlockingIOError:
        return b""
    finally:
        sock.setblocking(True)


def test_a_turn_s_writes_leave_together_at_its_end_without_a_writer(connection) -> None:
    conn, theirs, reactor = connection
    conn.write(b"ack-1|")
    conn.write(b"frame-1")
    assert _pending(theirs) == b""  # not yet: the turn is not over
    _end_turn(reactor)
    assert reactor.getWriters() == []
    theirs.settimeout(5)
    assert theirs.recv(100) == b"ack-1|frame-1"
    conn.write(b"next-turn")  # the connection is idle again: the same way
    _end_turn(reactor)
    assert theirs.recv(100) == b"next-turn" and reactor.getWriters() == []


def test_what_the_kernel_does_not_take_is_buffered_and_arrives_in_order(connection) -> None:
    conn, theirs, reactor = connection
    big = bytes(range(256)) * 40_000  # ~10 MB: more than the socket buffers hold
    conn.write(big)
    _end_turn(reactor)
    assert reactor.getWriters() == [conn]  # the rest waits for the reactor
    conn.write(b"after")  # must queue behind, not jump ahead
    assert _read_all(theirs, len(big) + 5, conn) == big + b"after"


def test_a_lost_connection_is_left_for_the_reactor_to_report(connection) -> None:
    conn, theirs, reactor = connection
    theirs.close()
    conn.write(b"x" * 100)  # the send fails: no exception escapes, the bytes are buffered
    _end_turn(reactor)
    assert reactor.getWriters() == [conn]
    assert isinstance(conn.doWrite(), Exception)  # what the reactor turns into connectionLost


def test_a_connection_closed_before_the_end_of_the_turn_sends_its_bytes_then_closes(connection) -> None:
    conn, theirs, reactor = connection
    conn.write(b"last words")
    conn.loseConnection()
    _end_turn(reactor)
    assert reactor.getWriters() == [conn]  # the reactor drains, then closes
    assert _read_all(theirs, 10, conn) == b"last words"


def test_install_is_idempotent() -> None:
    assert twisted_writes.install()
    assert twisted_writes.install()
    assert tcp.Connection.write.gochat_eager


class _Producer:
    """Records what the transport asks of it (Twisted's IPushProducer/IPullProducer)."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def pauseProducing(self) -> None:
        self.calls.append("pause")

    def resumeProducing(self) -> None:
        self.calls.append("resume")

    def stopProducing(self) -> None:
        self.calls.append("stop")


def test_a_connection_with_a_streaming_producer_takes_the_same_path(connection) -> None:
    """Daphne's WebSocket connections keep the HTTP channel as their streaming producer:
    the case that matters in production."""
    conn, theirs, reactor = connection
    producer = _Producer()
    conn.registerProducer(producer, True)
    conn.write(b"frame-1")
    _end_turn(reactor)
    assert reactor.getWriters() == []
    theirs.settimeout(5)
    assert theirs.recv(100) == b"frame-1"
    assert producer.calls == []


def test_a_full_buffer_still_pauses_a_streaming_producer(connection) -> None:
    conn, theirs, reactor = connection
    producer = _Producer()
    conn.registerProducer(producer, True)
    big = bytes(range(256)) * 40_000
    conn.write(big)
    assert producer.calls == ["pause"] and conn.producerPaused
    _end_turn(reactor)
    conn.write(b"after")  # paused: buffered behind the rest
    assert reactor.getWriters() == [conn]
    assert _read_all(theirs, len(big) + 5, conn) == big + b"after"
    # Twisted pauses again for each write over the limit, and resumes it once drained.
    assert producer.calls[-1] == "resume" and set(producer.calls[:-1]) == {"pause"}
    assert not conn.producerPaused


def test_a_pull_producer_keeps_the_buffered_path(connection) -> None:
    """A pull producer is asked for more once the buffer drains; writing behind
    Twisted's back would skip that request."""
    conn, theirs, reactor = connection
    producer = _Producer()
    conn.registerProducer(producer, False)
    assert producer.calls == ["resume"]  # Twisted asks a pull producer at once
    conn.write(b"chunk")
    assert reactor.getWriters() == [conn]
    assert _read_all(theirs, 5, conn) == b"chunk"
    assert producer.calls == ["resume", "resume"]
