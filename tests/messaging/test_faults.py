"""Crash tests on the live stack: an acked message survives the death of any
process after its ack, stored exactly once, with seqs 1..N and no gaps."""

import threading
import time

import pytest

from tests.client import Socket, chat_with_stored_history, register, single_cid
from tests.stack import Stack, wait_until


def _send_stream(sock: Socket, cid: str, prefix: str, count: int, acks: dict[str, dict], stop: threading.Event,
                 pace: float = 0.01) -> None:
    """Send `count` messages; record every ack. Errors/timeouts are left for the resend pass."""
    for i in range(count):
        if stop.is_set():
            return
        sock.send_message(cid, f"{prefix} {i}", client_msg_id=f"{prefix}-{i}")
        time.sleep(pace)


def _collect_acks(sock: Socket, cmids: list[str], acks: dict[str, dict], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    for cmid in cmids:
        if cmid in acks:
            continue
        try:
            frame = sock.ack_for(cmid, timeout=max(0.1, deadline - time.monotonic()))
        except TimeoutError:
            continue
        if frame["type"] == "ack":
            acks[cmid] = frame


def test_acked_messages_survive_worker_and_logic_crash(stack: Stack, db_reader) -> None:
    a, b = register("crash"), register("crash")
    sock = a.ws()
    cid = single_cid(a, b)
    # The conversation exists before the faults.
    first = sock.ack_for(sock.send_message(cid, "before", client_msg_id="crash-pre"))
    db_reader.wait_stored(cid, 1)

    stack.persist_worker.kill()
    acks: dict[str, dict] = {"crash-pre": first}
    cmids = [f"crash-{i}" for i in range(150)]
    stop = threading.Event()
    sender = threading.Thread(target=_send_stream, args=(sock, cid, "crash", 150, acks, stop))
    sender.start()
    _collect_acks(sock, cmids[:40], acks, timeout=20)
    assert len(acks) >= 41, "logic must ack while the persistence worker is down"

    # With the worker down, sync still returns every acked message (recent cache).
    synced = {m["client_msg_id"] for m in b.ws().sync(cid)}
    assert set(acks) <= synced

    stack.logic.kill()  # mid-stream
    time.sleep(0.5)
    stack.logic.start()
    sender.join()
    _collect_acks(sock, cmids, acks, timeout=30)
    # The client contract: no ack -> resend with the same client_msg_id.
    for _ in range(5):
        missing = [c for c in cmids if c not in acks]
        if not missing:
            break
        for cmid in missing:
            sock.send_message(cid, f"crash {cmid.split('-')[1]}", client_msg_id=cmid)
        _collect_acks(sock, missing, acks, timeout=20)
    assert len(acks) == 151

    stack.persist_worker.start()
    rows = db_reader.wait_stored(cid, 151, timeout=90)
    assert len(rows) == 151, "every acked message stored exactly once"
    assert [r[0] for r in rows] == list(range(1, 152)), "seqs 1..N without gaps"
    by_cmid = {cmid: (seq, mid) for seq, mid, cmid in rows}
    for cmid, ack in acks.items():
        assert by_cmid[cmid] == (ack["seq"], ack["message_id"]), cmid


def test_lost_sequence_counters_are_reseeded_after_mysql_max(stack: Stack, db_reader) -> None:
    from gochat_project.infra import redis_client

    _, _, sock, cid = chat_with_stored_history(db_reader, 5, "redis")
    r = redis_client.client()
    # Redis "loses" the counters, the idempotency records and the epoch marker.
    lost = [*r.scan_iter(redis_client.seq_pattern()), *r.scan_iter(redis_client.idem_pattern()),
            *r.scan_iter(redis_client.seq_epoch_pattern())]
    r.delete(*lost)
    ack = sock.ack_for(sock.send_message(cid, "after the loss"), timeout=30)
    assert ack["seq"] == 6
    rows = db_reader.wait_stored(cid, 6)
    assert [row[0] for row in rows] == [1, 2, 3, 4, 5, 6]


def test_resend_after_redis_loss_returns_the_stored_ack(stack: Stack, db_reader) -> None:
    from gochat_project.infra import redis_client

    a, b = register("idem"), register("idem")
    sock = a.ws()
    cid = single_cid(a, b)
    first = sock.ack_for(sock.send_message(cid, "x", client_msg_id="survives-redis"))
    db_reader.wait_stored(cid, 1)
    r = redis_client.client()
    r.delete(*r.scan_iter(redis_client.idem_pattern()))
    assert sock.ack_for(sock.send_message(cid, "x", client_msg_id="survives-redis")) == first
    sock.ack_for(sock.send_message(cid, "y"))
    assert [row[0] for row in db_reader.wait_stored(cid, 2)] == [1, 2]


def test_resend_racing_its_own_persistence_after_redis_loss_gets_the_first_ack(stack: Stack, db_reader) -> None:
    """Redis loses the counters while an acked message still waits for storage and its
    sender (who missed the ack) resends it. Logic must fence until the first copy is
    stored and then answer with that copy: a new seq would never be stored (the first
    copy holds the client_msg_id) and leave a gap. Found by `make chaos` (redis fault)."""
    from gochat_project.infra import redis_client

    _, _, sock, cid = chat_with_stored_history(db_reader, 2, "race")
    stack.persist_worker.kill()
    try:
        first = sock.ack_for(sock.send_message(cid, "racing", client_msg_id="race-resend"))
        assert first["seq"] == 3
        r = redis_client.client()
        r.delete(*r.scan_iter(redis_client.seq_pattern()), *r.scan_iter(redis_client.idem_pattern()),
                 *r.scan_iter(redis_client.seq_epoch_pattern()))
        sock.send_message(cid, "racing", client_msg_id="race-resend")
        early = [f for f in sock.quiet(2) if f.get("client_msg_id") == "race-resend"]
        assert not early, "no seq while the first copy is unstored"
    finally:
        stack.persist_worker.start()
    again = sock.ack_for("race-resend", timeout=60)
    assert (again["seq"], again["message_id"]) == (first["seq"], first["message_id"])
    after = sock.ack_for(sock.send_message(cid, "after"), timeout=30)
    assert after["seq"] == 4
    assert [row[0] for row in db_reader.wait_stored(cid, 4)] == [1, 2, 3, 4]


@pytest.mark.parametrize("process", ["gateway"])
def test_gateway_restart_clients_reconnect_and_sync(stack: Stack, process: str) -> None:
    a, b = register("gw"), register("gw")
    cid = single_cid(a, b)
    sb = b.ws("tgw2")
    sa = a.ws("tgw1")
    sa.ack_for(sa.send_message(cid, "one"))
    sb.message()
    gw = stack.gateways["tgw2"]
    gw.stop()  # graceful: sockets are closed with 1012 (service restart)
    assert sb.closed_with(10) == 1012
    acks = [sa.ack_for(sa.send_message(cid, f"while down {i}")) for i in range(3)]
    gw.start()
    sb = wait_until(lambda: b.ws("tgw2"), 10, "reconnect")
    got = sb.sync(cid, after_seq=1)
    assert [m["message_id"] for m in got] == [x["message_id"] for x in acks]


def test_presence_lost_from_redis_is_written_again_before_the_next_heartbeat(stack: Stack) -> None:
    """Redis restarted empty loses every presence entry: gateways notice within about a
    second (their stats entry is gone) and write presence again, rather than leaving
    pushes to their users skipped until the next heartbeat (GOCHAT_HEARTBEAT_S, 5 s here)."""
    import orjson

    from gochat_project.infra import redis_client

    a, b = register("pres"), register("pres")
    sock_a, sock_b = a.ws(), b.ws()
    cid = single_cid(a, b)
    r = redis_client.client()
    stats_key = redis_client.key("gwstats")

    def heartbeat_ts() -> float:
        raw = r.hget(stats_key, "tgw1")
        return orjson.loads(raw)["ts"] if raw else 0.0

    before = heartbeat_ts()
    wait_until(lambda: heartbeat_ts() != before, timeout=15, what="a heartbeat of tgw1")
    # Just after a heartbeat: the next one is 5 s away.
    r.delete(redis_client.presence_key(b.id), redis_client.online_key(), stats_key)
    started = time.monotonic()
    wait_until(lambda: r.exists(redis_client.presence_key(b.id)), timeout=10, what="b's presence again")
    assert time.monotonic() - started < 3.0, "presence came back only with the heartbeat"
    sock_a.ack_for(sock_a.send_message(cid, "pushed, not only synced"))
    assert sock_b.message(lambda m: m["body"] == "pushed, not only synced", timeout=5)
